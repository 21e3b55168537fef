package controllers

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
)

// HealthController answers the liveness and readiness probes.
type HealthController struct {
	db *gorm.DB
}

// NewHealthController returns a HealthController.
func NewHealthController(db *gorm.DB) *HealthController {
	return &HealthController{db: db}
}

// Healthz says the process is up. It touches nothing else, which also makes
// it the baseline for measuring the cost of authentication.
func (hc *HealthController) Healthz(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
	return nil
}

// Readyz says whether the database answers within two seconds; 503 when it
// does not, so a load balancer stops sending traffic here.
func (hc *HealthController) Readyz(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	sqlDB, err := hc.db.DB()
	if err == nil {
		err = sqlDB.PingContext(ctx)
	}
	if err != nil {
		return apierror.ErrUnavailable
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
	return nil
}
