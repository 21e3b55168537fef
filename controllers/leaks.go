package controllers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/models"
)

// LeakController lets anyone who finds a leaked token kill it, without
// owning it, the way code hosts report secrets they find in public code.
type LeakController struct {
	db *gorm.DB
}

// NewLeakController returns a LeakController.
func NewLeakController(db *gorm.DB) *LeakController {
	return &LeakController{db: db}
}

type leakReport struct {
	Tokens []string `json:"tokens" binding:"required,max=100,dive,max=512"`
}

// Revoke revokes every live token in the report. The answer is always 202
// with the number of strings received, so it tells nothing about which
// were real; strings that are neither well-formed tokens nor imported
// Django keys in shape cost no query.
func (lc *LeakController) Revoke(c *gin.Context) error {
	var req leakReport
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	hashes := make([]string, 0, len(req.Tokens))
	seen := make(map[string]bool, len(req.Tokens))
	for _, s := range req.Tokens {
		// Keys imported from Django leak too, from old scripts most of all.
		if (models.WellFormedToken(s) || models.LegacyTokenShape(s)) && !seen[s] {
			seen[s] = true
			hashes = append(hashes, models.HashToken(s))
		}
	}
	if _, err := models.RevokeLeaked(requestContext(c), lc.db, hashes); err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, gin.H{"received": len(req.Tokens)})
	return nil
}
