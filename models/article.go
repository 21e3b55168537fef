package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Limits of an article, in characters.
const (
	ArticleTitleMaxLength = 200
	ArticleBodyMaxLength  = 100000
)

// Article is a text written by a user: the example resource, owned by its
// author. Anyone with a token that may read articles reads every article;
// only the author changes or deletes one.
type Article struct {
	ID        uint   `gorm:"primaryKey"`
	AuthorID  uint   `gorm:"not null;index"`
	Author    User   `gorm:"constraint:OnDelete:CASCADE"`
	Title     string `gorm:"size:200;not null"`
	Body      string `gorm:"type:text;not null"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OwnedBy tells whether the user wrote the article.
func (a *Article) OwnedBy(userID uint) bool {
	return a.AuthorID == userID
}

// ArticleChanges are the fields of an article to change; nil leaves a
// field as it is.
type ArticleChanges struct {
	Title *string
	Body  *string
}

// ListArticles returns limit articles from offset, newest first, with
// their authors, and how many articles there are in all. A page past the
// end is empty, not an error.
func ListArticles(ctx context.Context, db *gorm.DB, offset, limit int) ([]Article, int64, error) {
	db = db.WithContext(ctx)
	var total int64
	if err := db.Model(&Article{}).Count(&total).Error; err != nil {
		return nil, 0, translate(err)
	}
	articles := []Article{}
	if int64(offset) >= total {
		return articles, total, nil
	}
	// The id orders by creation and is the primary key: the page is read
	// from the index, and rows written in the same instant keep one order.
	err := db.Joins("Author").Order("articles.id DESC").Offset(offset).Limit(limit).Find(&articles).Error
	return articles, total, translate(err)
}

// FindArticle returns the article with that id and its author.
func FindArticle(ctx context.Context, db *gorm.DB, id uint) (*Article, error) {
	var a Article
	if err := db.WithContext(ctx).Joins("Author").Where("articles.id = ?", id).Take(&a).Error; err != nil {
		return nil, translate(err)
	}
	return &a, nil
}

// CreateArticle stores a new article of author.
func CreateArticle(ctx context.Context, db *gorm.DB, author *User, title, body string) (*Article, error) {
	a := &Article{AuthorID: author.ID, Title: title, Body: body}
	// Omit the associations: creating an article must never write its
	// author's row.
	if err := db.WithContext(ctx).Omit(clause.Associations).Create(a).Error; err != nil {
		return nil, translate(err)
	}
	a.Author = *author
	return a, nil
}

// UpdateArticle applies the changes to a. The statement is limited to the
// author's row, so an article deleted meanwhile is ErrNotFound rather than
// a silent success. No changes at all write nothing.
func UpdateArticle(ctx context.Context, db *gorm.DB, a *Article, changes ArticleChanges) error {
	updates := map[string]any{}
	if changes.Title != nil {
		updates["title"] = *changes.Title
	}
	if changes.Body != nil {
		updates["body"] = *changes.Body
	}
	if len(updates) == 0 {
		return nil
	}
	now := nowOf(db)
	updates["updated_at"] = now
	res := db.WithContext(ctx).Model(&Article{}).Where("id = ? AND author_id = ?", a.ID, a.AuthorID).UpdateColumns(updates)
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrNotFound
	}
	if changes.Title != nil {
		a.Title = *changes.Title
	}
	if changes.Body != nil {
		a.Body = *changes.Body
	}
	a.UpdatedAt = now
	return nil
}

// DeleteArticle deletes a. An article already gone is ErrNotFound.
func DeleteArticle(ctx context.Context, db *gorm.DB, a *Article) error {
	res := db.WithContext(ctx).Where("id = ? AND author_id = ?", a.ID, a.AuthorID).Delete(&Article{})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrNotFound
	}
	return nil
}
