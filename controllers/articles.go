package controllers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// ArticleController serves /api/articles/, the example resource that
// docs/EXTENDING.md walks through. Every article is readable by any token
// that may read articles; only its author may change or delete it.
type ArticleController struct {
	db *gorm.DB
}

// NewArticleController returns an ArticleController.
func NewArticleController(db *gorm.DB) *ArticleController {
	return &ArticleController{db: db}
}

// articleResponse is an article as clients see it: the author is named,
// never embedded as a user.
type articleResponse struct {
	ID        uint          `json:"id"`
	Title     string        `json:"title"`
	Body      string        `json:"body"`
	Author    articleAuthor `json:"author"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

type articleAuthor struct {
	ID       uint   `json:"id"`
	Username string `json:"username"`
}

func newArticleResponse(a *models.Article) articleResponse {
	return articleResponse{ID: a.ID, Title: a.Title, Body: a.Body,
		Author:    articleAuthor{ID: a.Author.ID, Username: a.Author.Username},
		CreatedAt: a.CreatedAt.UTC().Truncate(time.Second), UpdatedAt: a.UpdatedAt.UTC().Truncate(time.Second)}
}

type articleListResponse struct {
	Articles []articleResponse `json:"articles"`
	pageInfo
}

// List returns one page of every article, newest first.
func (ac *ArticleController) List(c *gin.Context) error {
	page, err := parsePage(c)
	if err != nil {
		return err
	}
	articles, total, err := models.ListArticles(c.Request.Context(), ac.db, page.offset(), page.Size)
	if err != nil {
		return err
	}
	out := make([]articleResponse, len(articles))
	for i := range articles {
		out[i] = newArticleResponse(&articles[i])
	}
	c.JSON(http.StatusOK, articleListResponse{Articles: out, pageInfo: newPageInfo(page, total)})
	return nil
}

type articleCreateRequest struct {
	Title string `json:"title" binding:"required,notblank,max=200,nocontrol"`
	Body  string `json:"body" binding:"max=100000"`
}

// Create stores an article written by the user and answers 201 with its
// address in Location.
func (ac *ArticleController) Create(c *gin.Context) error {
	var req articleCreateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	a, err := models.CreateArticle(c.Request.Context(), ac.db, user, req.Title, req.Body)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/articles/"+strconv.FormatUint(uint64(a.ID), 10)+"/")
	c.JSON(http.StatusCreated, newArticleResponse(a))
	return nil
}

// Show returns one article, whoever wrote it.
func (ac *ArticleController) Show(c *gin.Context) error {
	a, err := ac.find(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, newArticleResponse(a))
	return nil
}

// articleUpdateRequest holds the fields to change; a field left out (or
// null) keeps its value.
type articleUpdateRequest struct {
	Title *string `json:"title" binding:"omitnil,notblank,max=200,nocontrol"`
	Body  *string `json:"body" binding:"omitnil,max=100000"`
}

// Update changes the title or body of one of the user's articles.
func (ac *ArticleController) Update(c *gin.Context) error {
	a, err := ac.findOwn(c)
	if err != nil {
		return err
	}
	var req articleUpdateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := models.UpdateArticle(c.Request.Context(), ac.db, a, models.ArticleChanges{Title: req.Title, Body: req.Body}); err != nil {
		return err
	}
	c.JSON(http.StatusOK, newArticleResponse(a))
	return nil
}

// Delete deletes one of the user's articles.
func (ac *ArticleController) Delete(c *gin.Context) error {
	a, err := ac.findOwn(c)
	if err != nil {
		return err
	}
	if err := models.DeleteArticle(c.Request.Context(), ac.db, a); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// find loads the article named by the :id parameter. A non-numeric id is
// 404 like a missing one: both name no article.
func (ac *ArticleController) find(c *gin.Context) (*models.Article, error) {
	id, err := idParam(c)
	if err != nil {
		return nil, err
	}
	return models.FindArticle(c.Request.Context(), ac.db, id)
}

// findOwn is find for a change: another user's article is 403 forbidden.
// Its existence is no secret (anyone may read it), so 403 tells the client
// the truth where a 404 would mislead it.
func (ac *ArticleController) findOwn(c *gin.Context) (*models.Article, error) {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return nil, err
	}
	a, err := ac.find(c)
	if err != nil {
		return nil, err
	}
	if !a.OwnedBy(user.ID) {
		return nil, apierror.ErrForbidden
	}
	return a, nil
}
