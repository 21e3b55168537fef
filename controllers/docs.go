package controllers

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// DocsController serves the service's description of itself.
type DocsController struct {
	openAPI []byte
}

// NewDocsController returns a DocsController serving the OpenAPI document
// openAPI (YAML).
func NewDocsController(openAPI []byte) *DocsController {
	return &DocsController{openAPI: openAPI}
}

// OpenAPI serves the OpenAPI document: the contract of every route, which
// the tests hold the service to.
func (dc *DocsController) OpenAPI(c *gin.Context) error {
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", dc.openAPI)
	return nil
}
