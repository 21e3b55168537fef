package controllers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/middlewares"
	"tokenauth/models"
)

// EventController shows users what happened to their account.
type EventController struct {
	db *gorm.DB
}

// NewEventController returns an EventController.
func NewEventController(db *gorm.DB) *EventController {
	return &EventController{db: db}
}

type eventResponse struct {
	ID        uint      `json:"id"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	TokenID   *uint     `json:"token_id"`
	NewClient bool      `json:"new_client"`
}

type eventsResponse struct {
	Events []eventResponse `json:"events"`
	pageInfo
}

// List returns a page of the user's own events, newest first.
func (ec *EventController) List(c *gin.Context) error {
	p, err := parsePage(c)
	if err != nil {
		return err
	}
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	// One more than the page: whether it comes tells whether there is a
	// next page, past the counted total too.
	events, total, err := models.ListEvents(c.Request.Context(), ec.db, user.ID, p.offset(), p.Size+1)
	if err != nil {
		return err
	}
	more := len(events) > p.Size
	events = events[:min(len(events), p.Size)]
	out := eventsResponse{Events: make([]eventResponse, len(events)), pageInfo: newCappedPageInfo(p, total, models.MaxCountedEvents, more)}
	for i, e := range events {
		out.Events[i] = eventResponse{ID: e.ID, Type: e.Type, Reason: e.Reason, Detail: e.Detail, CreatedAt: e.CreatedAt.UTC().Truncate(time.Second),
			IP: e.IP, UserAgent: e.UserAgent, TokenID: e.TokenID, NewClient: e.NewClient}
	}
	c.JSON(http.StatusOK, out)
	return nil
}
