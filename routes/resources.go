package routes

import (
	"gorm.io/gorm"

	"tokenauth/controllers"
)

// Resources are the resources the service serves besides accounts and
// tokens. A new resource is a Resource added here (docs/EXTENDING.md).
func Resources() []Resource {
	return []Resource{Articles}
}

// Articles is the example resource, owned by its author: any token that may
// read articles reads them all, only the author changes one.
func Articles(api API, db *gorm.DB) {
	articles := controllers.NewArticleController(db)
	api.GET("/articles", Scope("articles:read"), articles.List)
	api.POST("/articles", Scope("articles:write"), articles.Create)
	api.GET("/articles/:id", Scope("articles:read"), articles.Show)
	api.PATCH("/articles/:id", Scope("articles:write"), articles.Update)
	api.DELETE("/articles/:id", Scope("articles:write"), articles.Delete)
}
