// Package webhooks tells the operator's other systems of security events:
// every event is delivered, signed, to each endpoint that wants it (see
// docs/WEBHOOKS.md).
//
// The security-event table is the outbox. An event is written in the
// same transaction as its cause; a Dispatcher then makes it into one
// delivery per endpoint (models.QueueWebhooks) and delivers those with an
// outbox worker, the one that sends the mail: at least once, retried with
// a backoff that doubles for more than a day, then given up and shown to
// the operator (tokenauth webhook list). A delivery is claimed only when
// no earlier one of its endpoint and user waits, so each endpoint hears
// of a user's events in their order, whichever instance sends them.
package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"tokenauth/keyring"
	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/outbox"
)

// Policy is how a delivery is tried: at first a minute after a failure,
// doubling up to two hours, for 19 attempts, which spans more than 24
// hours; then it is given up.
var Policy = outbox.Policy{MaxAttempts: 19, FirstRetry: time.Minute, MaxRetry: 2 * time.Hour,
	AttemptTimeout: 10 * time.Second, Poll: 5 * time.Second}

// SignatureHeader carries the signature of a delivery.
const SignatureHeader = "Tokenauth-Signature"

// DeliveryHeader carries the id of a delivery; the event's id is in the
// body.
const DeliveryHeader = "Tokenauth-Delivery"

// secretPurpose is the keyring purpose signing secrets are sealed under.
const secretPurpose = "webhook signing secret"

// secretPrefix starts every signing secret, so that one is recognised.
const secretPrefix = "whsec_"

// fanOutBatch is how many events one transaction makes into deliveries.
const fanOutBatch = 200

// Sign returns the value of the Tokenauth-Signature header of body sent
// at t: t=UNIX,v1=HEX, HEX being HMAC-SHA256 of "UNIX." + body under
// secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Dispatcher delivers the webhooks of one database.
type Dispatcher struct {
	db      *gorm.DB
	keyring *keyring.Keyring
	client  *http.Client
	metrics *metrics.Metrics
	log     *slog.Logger
	policy  outbox.Policy
	worker  *outbox.Worker[models.WebhookDelivery, *models.WebhookDelivery]
	fanOut  chan struct{}
	// looked is set once the first look at the events is over.
	looked   chan struct{}
	lookOnce sync.Once
}

// NewDispatcher returns the dispatcher of db (whose clock stamps the
// signatures), opening secrets with kr and counting in m.
func NewDispatcher(db *gorm.DB, kr *keyring.Keyring, m *metrics.Metrics, policy outbox.Policy, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{db: db, keyring: kr, metrics: m, log: log, policy: policy,
		fanOut: make(chan struct{}, 1), looked: make(chan struct{})}
	d.client = &http.Client{
		// A redirect is not followed: a receiver says where it is by its
		// registered URL, and a redirect could lead the signed body
		// anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	d.worker = outbox.NewWorker[models.WebhookDelivery, *models.WebhookDelivery](db, models.WebhookDeliveryTable,
		policy, d.deliver, log)
	d.worker.Where(models.WebhookInOrder)
	d.worker.OnRetry(func(ctx context.Context, w *models.WebhookDelivery, at time.Time) {
		if err := models.DelayWebhookChain(ctx, db, w, at); err != nil && ctx.Err() == nil {
			log.Warn("delaying the deliveries behind a failed one", "id", w.ID, "error", err.Error())
		}
	})
	d.worker.Observe(func(r outbox.Result) {
		switch r {
		case outbox.Delivered:
			m.WebhookAttempt(metrics.WebhookDelivered)
		case outbox.Retrying:
			m.WebhookAttempt(metrics.WebhookRetried)
		case outbox.GaveUp:
			m.WebhookAttempt(metrics.WebhookFailed)
		}
	})
	d.worker.AfterPass(d.count)
	return d
}

// Run works until ctx ends: it makes events into deliveries and delivers
// them. A delivery under way then is released for the next start.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { d.runFanOut(ctx) })
	wg.Go(func() { d.worker.Run(ctx) })
	wg.Wait()
}

// runFanOut makes events into deliveries whenever woken and every poll.
func (d *Dispatcher) runFanOut(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.fanOut:
		case <-timer.C:
		}
		queued := false
		for ctx.Err() == nil {
			n, err := models.QueueWebhooks(ctx, d.db, fanOutBatch)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("queueing webhook deliveries; will retry", "error", err.Error())
				}
				break
			}
			queued = queued || n > 0
			if n < fanOutBatch {
				break
			}
		}
		if queued {
			d.worker.Wake()
		}
		d.lookOnce.Do(func() { close(d.looked) })
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d.policy.Poll)
	}
}

// Wake has the dispatcher look at table now (see models.ListenForQueued):
// new events, or new deliveries.
func (d *Dispatcher) Wake(table string) {
	switch table {
	case models.EventTable:
		select {
		case d.fanOut <- struct{}{}:
		default:
		}
	case models.WebhookDeliveryTable:
		d.worker.Wake()
	}
}

// WakeAll has the dispatcher look for work now, as a poll would.
func (d *Dispatcher) WakeAll() {
	d.Wake(models.EventTable)
	d.worker.Wake()
}

// Started tells whether the dispatcher has looked at the events and its
// deliveries once since it started.
func (d *Dispatcher) Started() bool {
	select {
	case <-d.looked:
		return d.worker.Passes() > 0
	default:
		return false
	}
}

// deliver makes one attempt at a delivery. A secret that cannot be
// opened (sealed under another key) can never sign: given up at once.
func (d *Dispatcher) deliver(ctx context.Context, w *models.WebhookDelivery) (map[string]any, error) {
	ep, err := models.FindWebhookEndpoint(ctx, d.db, w.EndpointID)
	if err != nil {
		return nil, err
	}
	secret, err := d.keyring.Open(secretPurpose, ep.Secret)
	if err != nil {
		return nil, outbox.Permanent(err)
	}
	return nil, d.post(ctx, ep.URL, string(secret), strconv.FormatUint(uint64(w.ID), 10), []byte(w.Body))
}

// post sends body to url, signed with secret, and says whether the
// receiver took it (any 2xx).
func (d *Dispatcher) post(ctx context.Context, target, secret, deliveryID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return outbox.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenauth-webhooks")
	req.Header.Set(DeliveryHeader, deliveryID)
	req.Header.Set(SignatureHeader, Sign(secret, models.Now(d.db), body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the receiver answered %s: %q", resp.Status, strings.ToValidUTF8(string(answer), "?"))
	}
	return nil
}

// TestEvent is the body of a test delivery (tokenauth webhook test).
type TestEvent struct {
	ID        uint      `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
}

// SendTest posts a signed webhook_test event to the endpoint at once,
// outside the outbox, and returns what went wrong, if anything.
func (d *Dispatcher) SendTest(ctx context.Context, ep *models.WebhookEndpoint) error {
	secret, err := d.keyring.Open(secretPurpose, ep.Secret)
	if err != nil {
		return fmt.Errorf("the endpoint's secret cannot be opened with this SECRET_KEY: %w", err)
	}
	body := fmt.Appendf(nil, `{"id":0,"type":"webhook_test","created_at":%q}`, models.Now(d.db).Format(time.RFC3339))
	ctx, cancel := context.WithTimeout(ctx, d.policy.AttemptTimeout)
	defer cancel()
	return d.post(ctx, ep.URL, string(secret), "test", body)
}

// count reports how many deliveries wait and how many were given up.
func (d *Dispatcher) count(ctx context.Context) {
	c, err := models.CountDeliveries(ctx, d.db, models.WebhookDeliveryTable)
	if err == nil {
		d.metrics.WebhookOutbox(c.Pending, c.Failed)
	}
}

// maxURLLength is the longest endpoint URL accepted.
const maxURLLength = 2000

// NewEndpoint checks rawURL and the event types wanted (none: all of
// them) and returns the endpoint with a new signing secret, sealed in the
// endpoint and in plain text for the operator to see once.
func NewEndpoint(kr *keyring.Keyring, rawURL string, events []string, known []string) (*models.WebhookEndpoint, string, error) {
	if err := checkURL(rawURL); err != nil {
		return nil, "", err
	}
	for _, e := range events {
		if !slices.Contains(known, e) {
			return nil, "", fmt.Errorf("unknown event type %q (known: %s)", e, strings.Join(known, ", "))
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sealed, err := kr.Seal(secretPurpose, []byte(secret))
	if err != nil {
		return nil, "", err
	}
	return &models.WebhookEndpoint{URL: rawURL, Events: strings.Join(events, ","), Secret: sealed}, secret, nil
}

// checkURL accepts an absolute http or https URL with a host and no
// credentials (they would be stored in plain text).
func checkURL(rawURL string) error {
	if len(rawURL) > maxURLLength || !utf8.ValidString(rawURL) {
		return fmt.Errorf("the URL must be valid text of at most %d bytes", maxURLLength)
	}
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %w", rawURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: the URL must start with https:// (or http://)", rawURL)
	case u.Host == "":
		return fmt.Errorf("%q: the URL has no host", rawURL)
	case u.User != nil:
		return errors.New("the URL must not hold a user name or password; authenticate by the signature")
	}
	return nil
}
