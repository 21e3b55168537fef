package models

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// WebhookDeliveryTable is the table of the webhook outbox.
const WebhookDeliveryTable = "webhook_deliveries"

// EventTable is the table of security events: the source the webhook
// deliveries are made from (see QueueWebhooks).
const EventTable = "security_events"

// WebhookEndpoint is a URL an operator registered to be told of security
// events (tokenauth webhook add). Its signing secret is kept sealed under
// the server's secret key: every delivery is signed with it, so it must be
// read back, and a copy of the database without the key does not give it
// up.
type WebhookEndpoint struct {
	ID  uint   `gorm:"primaryKey"`
	URL string `gorm:"size:2000;not null"`
	// Events are the event types the endpoint wants, comma-separated;
	// empty means all of them.
	Events string `gorm:"size:2000;not null;default:''"`
	// Secret is the signing secret, sealed (keyring.Seal).
	Secret string `gorm:"size:200;not null" json:"-"`
	// AfterEventID is the last security event that existed when the
	// endpoint was added: it is told of those that come after.
	AfterEventID uint `gorm:"not null;default:0"`
	CreatedAt    time.Time
}

// Wants tells whether the endpoint wants events of type typ.
func (e *WebhookEndpoint) Wants(typ string) bool {
	return e.Events == "" || slices.Contains(strings.Split(e.Events, ","), typ)
}

// WebhookDelivery is one event on its way to one endpoint: the webhook
// outbox. Body is the JSON the endpoint receives, made when the event was
// queued, so that a delivery says what the account looked like then and
// outlives the event's retention. It holds no secret.
//
// Deliveries to an endpoint about one user go out in the order of their
// events: a delivery is due only when no earlier one of the same endpoint
// and user is still waiting (WebhookInOrder).
type WebhookDelivery struct {
	ID         uint            `gorm:"primaryKey"`
	EndpointID uint            `gorm:"not null;index:idx_webhook_deliveries_chain,priority:1,where:delivered_at IS NULL AND failed_at IS NULL"`
	Endpoint   WebhookEndpoint `gorm:"constraint:OnDelete:CASCADE" json:"-"`
	// UserKey is the event's user, 0 for events without one: the chain
	// whose order is kept.
	UserKey   uint   `gorm:"not null;index:idx_webhook_deliveries_chain,priority:2"`
	EventID   uint   `gorm:"not null;index:idx_webhook_deliveries_chain,priority:3"`
	EventType string `gorm:"size:32;not null"`
	Body      string `gorm:"type:text;not null"`
	CreatedAt time.Time
	Delivery
}

// DeliveryRow returns the delivery's id and state.
func (d *WebhookDelivery) DeliveryRow() (uint, *Delivery) { return d.ID, &d.Delivery }

// WebhookInOrder is the condition (for outbox workers, see ClaimDueWhere)
// under which a webhook delivery may be claimed: no earlier delivery of
// its endpoint and user still waits, given up ones aside. Only the head of
// each chain is ever claimed, so two workers never send one user's events
// out of order, whatever process they run in.
const WebhookInOrder = "NOT EXISTS (SELECT 1 FROM webhook_deliveries earlier WHERE " +
	"earlier.endpoint_id = webhook_deliveries.endpoint_id AND earlier.user_key = webhook_deliveries.user_key AND " +
	"earlier.event_id < webhook_deliveries.event_id AND earlier.delivered_at IS NULL AND earlier.failed_at IS NULL)"

// WebhookEvent is the body of a webhook delivery.
type WebhookEvent struct {
	ID        uint         `json:"id"`
	Type      string       `json:"type"`
	CreatedAt time.Time    `json:"created_at"`
	User      *WebhookUser `json:"user"`
	TokenID   *uint        `json:"token_id"`
	// Reason says why a token was revoked or a login failed, or which
	// notice of expiry this is; empty for other events.
	Reason string `json:"reason,omitempty"`
	// Detail says where a leaked token was found.
	Detail string `json:"detail,omitempty"`
}

// WebhookUser is the account an event is about.
type WebhookUser struct {
	ID       uint   `json:"id"`
	Username string `json:"username"`
}

// AddWebhookEndpoint stores e, whose Secret is already sealed. It is told
// of the events recorded from now on: those before are marked as looked
// at (QueueWebhooks leaves the events alone while no endpoint exists).
func AddWebhookEndpoint(ctx context.Context, db *gorm.DB, e *WebhookEndpoint) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		if err := lockFanOut(tx); err != nil {
			return Change{}, err
		}
		if err := tx.Model(&SecurityEvent{}).Where("webhooks_queued = ?", false).
			UpdateColumn("webhooks_queued", true).Error; err != nil {
			return Change{}, err
		}
		var last []uint
		if err := tx.Model(&SecurityEvent{}).Order("id DESC").Limit(1).Pluck("id", &last).Error; err != nil {
			return Change{}, err
		}
		if len(last) == 1 {
			e.AfterEventID = last[0]
		}
		return Change{}, tx.Create(e).Error
	})
}

// WebhookEndpointStats is an endpoint with how its deliveries stand.
type WebhookEndpointStats struct {
	WebhookEndpoint
	Pending, Delivered, Failed int64
	// LastError is what the last failed attempt of any of its deliveries
	// said.
	LastError string
}

// ListWebhookEndpoints returns every endpoint, oldest first, with the
// counts of its deliveries.
func ListWebhookEndpoints(ctx context.Context, db *gorm.DB) ([]WebhookEndpointStats, error) {
	db = db.WithContext(ctx)
	var endpoints []WebhookEndpoint
	if err := db.Order("id").Find(&endpoints).Error; err != nil {
		return nil, translate(err)
	}
	out := make([]WebhookEndpointStats, 0, len(endpoints))
	for _, e := range endpoints {
		s := WebhookEndpointStats{WebhookEndpoint: e}
		err := db.Raw("SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), "+
			"COUNT(*) FILTER (WHERE delivered_at IS NOT NULL), COUNT(*) FILTER (WHERE failed_at IS NOT NULL) "+
			"FROM webhook_deliveries WHERE endpoint_id = ?", e.ID).Row().Scan(&s.Pending, &s.Delivered, &s.Failed)
		if err != nil {
			return nil, translate(err)
		}
		var last []string
		if err := db.Model(&WebhookDelivery{}).Where("endpoint_id = ? AND last_error <> ''", e.ID).
			Order("id DESC").Limit(1).Pluck("last_error", &last).Error; err != nil {
			return nil, translate(err)
		}
		if len(last) == 1 {
			s.LastError = last[0]
		}
		out = append(out, s)
	}
	return out, nil
}

// FindWebhookEndpoint returns the endpoint id.
func FindWebhookEndpoint(ctx context.Context, db *gorm.DB, id uint) (*WebhookEndpoint, error) {
	var e WebhookEndpoint
	if err := db.WithContext(ctx).First(&e, id).Error; err != nil {
		return nil, translate(err)
	}
	return &e, nil
}

// RemoveWebhookEndpoint deletes the endpoint id and its deliveries.
func RemoveWebhookEndpoint(ctx context.Context, db *gorm.DB, id uint) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		// Deleted explicitly: SQLite enforces the cascade only with its
		// foreign keys on.
		if err := tx.Where("endpoint_id = ?", id).Delete(&WebhookDelivery{}).Error; err != nil {
			return Change{}, err
		}
		res := tx.Delete(&WebhookEndpoint{}, id)
		if res.Error == nil && res.RowsAffected == 0 {
			return Change{}, ErrNotFound
		}
		return Change{}, res.Error
	})
}

// ListWebhookDeliveries returns the deliveries of endpoint still to make
// and those given up, oldest first, at most limit of them.
func ListWebhookDeliveries(ctx context.Context, db *gorm.DB, endpointID uint, limit int) ([]WebhookDelivery, error) {
	out := []WebhookDelivery{}
	err := db.WithContext(ctx).Omit("body").Where("endpoint_id = ? AND delivered_at IS NULL", endpointID).
		Order("id").Limit(limit).Find(&out).Error
	return out, translate(err)
}

// webhookFanOutLock is the PostgreSQL advisory lock that makes one
// instance at a time queue deliveries (so that their ids follow the
// events' ids) or add an endpoint.
const webhookFanOutLock = 0x746b6177 // "tkaw"

// lockFanOut takes the fan-out lock for the transaction tx: the advisory
// lock on PostgreSQL; on SQLite every transaction holds the write lock
// from its start.
func lockFanOut(tx *gorm.DB) error {
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", webhookFanOutLock).Error
}

// QueueWebhooks turns up to limit security events not yet looked at into
// deliveries, one per endpoint that wants each, in one transaction that
// also marks the events done, and reports how many events it looked at.
// An event becomes visible to it only once the transaction that recorded
// it commits, so none is missed; one instance at a time does this (see
// lockFanOut), so deliveries are made in the order of their events.
//
// While no endpoint exists it writes nothing: a service without webhooks
// pays one small read per batch of events.
func QueueWebhooks(ctx context.Context, db *gorm.DB, limit int) (int, error) {
	var endpoints int64
	if err := db.WithContext(ctx).Model(&WebhookEndpoint{}).Count(&endpoints).Error; err != nil {
		return 0, translate(err)
	}
	if endpoints == 0 {
		return 0, nil
	}
	var n int
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		if err := lockFanOut(tx); err != nil {
			return Change{}, err
		}
		var endpoints []WebhookEndpoint
		if err := tx.Order("id").Find(&endpoints).Error; err != nil || len(endpoints) == 0 {
			return Change{}, err
		}
		var events []SecurityEvent
		if err := tx.Where("webhooks_queued = ?", false).Order("id").Limit(limit).Find(&events).Error; err != nil {
			return Change{}, err
		}
		n = len(events)
		if n == 0 {
			return Change{}, nil
		}
		if err := queueDeliveries(tx, events, endpoints); err != nil {
			return Change{}, err
		}
		ids := make([]uint, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		return Change{}, tx.Model(&SecurityEvent{}).Where("id IN ?", ids).UpdateColumn("webhooks_queued", true).Error
	})
	return n, err
}

// queueDeliveries writes the deliveries of events to the endpoints that
// want them, in the order of the events.
func queueDeliveries(tx *gorm.DB, events []SecurityEvent, endpoints []WebhookEndpoint) error {
	var userIDs []uint
	for _, e := range events {
		if e.UserID != nil {
			userIDs = append(userIDs, *e.UserID)
		}
	}
	usernames := map[uint]string{}
	if len(userIDs) > 0 {
		var users []User
		if err := tx.Select("id", "username").Where("id IN ?", userIDs).Find(&users).Error; err != nil {
			return err
		}
		for _, u := range users {
			usernames[u.ID] = u.Username
		}
	}
	for _, ev := range events {
		body := WebhookEvent{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt.UTC(), TokenID: ev.TokenID, Reason: ev.Reason,
			Detail: ev.Detail}
		var userKey uint
		if ev.UserID != nil {
			userKey = *ev.UserID
			body.User = &WebhookUser{ID: *ev.UserID, Username: usernames[*ev.UserID]}
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		for _, ep := range endpoints {
			if ev.ID <= ep.AfterEventID || !ep.Wants(ev.Type) {
				continue
			}
			d := &WebhookDelivery{EndpointID: ep.ID, UserKey: userKey, EventID: ev.ID, EventType: ev.Type, Body: string(raw)}
			if err := enqueue(tx, d, &d.Delivery); err != nil {
				return err
			}
		}
	}
	return nil
}

// DelayWebhookChain makes the deliveries waiting behind d (same endpoint
// and user, later events) due no sooner than at, when d will be tried
// again: they cannot go before it, and while they look due every claim
// would look at each of them and pass it over.
func DelayWebhookChain(ctx context.Context, db *gorm.DB, d *WebhookDelivery, at time.Time) error {
	return translate(db.WithContext(ctx).Model(&WebhookDelivery{}).
		Where("endpoint_id = ? AND user_key = ? AND event_id > ? AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at < ?",
			d.EndpointID, d.UserKey, d.EventID, at).
		UpdateColumn("next_attempt_at", at).Error)
}

// PruneWebhookDeliveries deletes deliveries made or given up before
// before, and returns how many.
func PruneWebhookDeliveries(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("delivered_at < ? OR failed_at < ?", before.UTC(), before.UTC()).Delete(&WebhookDelivery{})
	return res.RowsAffected, translate(res.Error)
}
