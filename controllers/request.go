package controllers

import (
	"context"

	"github.com/gin-gonic/gin"

	"tokenauth/config"
	"tokenauth/models"
)

// requestContext is the request's context carrying its client (IP address,
// as Gin resolves it through TRUSTED_PROXIES, and user agent), for the
// security events the models record.
func requestContext(c *gin.Context) context.Context {
	return models.WithClient(c.Request.Context(), models.Client{IP: c.ClientIP(), UserAgent: c.Request.UserAgent()})
}

// tokenPolicy is the part of the configuration that governs issuing tokens.
func tokenPolicy(cfg config.Config) models.TokenPolicy {
	return models.TokenPolicy{MaxPerUser: cfg.MaxTokensPerUser, IdleTimeout: cfg.TokenIdleTimeout,
		KnownClientWindow: cfg.SecurityEventRetention}
}
