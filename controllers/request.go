package controllers

import (
	"context"
	"strconv"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// requestContext is the request's context carrying its client (IP address,
// as Gin resolves it through TRUSTED_PROXIES, and user agent), for the
// security events the models record.
func requestContext(c *gin.Context) context.Context {
	return models.WithClient(c.Request.Context(), models.Client{IP: middlewares.ClientIP(c), UserAgent: c.Request.UserAgent()})
}

// tokenPolicy is the part of the configuration that governs issuing tokens.
func tokenPolicy(cfg config.Config) models.TokenPolicy {
	return models.TokenPolicy{MaxPerUser: cfg.MaxTokensPerUser, IdleTimeout: cfg.TokenIdleTimeout,
		KnownClientWindow: cfg.SecurityEventRetention}
}

// passwordPolicy is the rule new passwords follow.
func passwordPolicy(cfg config.Config) models.PasswordPolicy {
	return models.PasswordPolicy{MinLength: cfg.PasswordMinLength}
}

// idParam reads the :id path parameter. An id that is not a positive whole
// number names nothing, so it is 404 like a missing one.
func idParam(c *gin.Context) (uint, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || id == 0 {
		return 0, apierror.ErrNotFound
	}
	return uint(id), nil
}
