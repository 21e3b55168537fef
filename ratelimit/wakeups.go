package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// wakeups tells the attempts of this process that wait on a key when an
// attempt on that key ends, on any instance: End publishes on the key's
// channel (only when an attempt waits), and one subscription per process,
// to the channels of every key, hears it. The subscription is open only
// while an attempt of this process waits, so an instance whose logins
// never wait holds no connection for it.
type wakeups struct {
	client *redis.Client
	// prefix starts the channel of every key.
	prefix string

	mu  sync.Mutex
	sub *subscription // nil while nothing waits
}

func newWakeups(client *redis.Client, prefix string) *wakeups {
	return &wakeups{client: client, prefix: prefix}
}

// channel is where the end of an attempt on key is published.
func (w *wakeups) channel(key string) string { return w.prefix + key }

// subscription is one subscription to every key's channel and the
// attempts that listen on it.
type subscription struct {
	ps *redis.PubSub
	// ready is closed once Redis confirmed the subscription, or it
	// failed (err); gone once it no longer hears anything.
	ready, gone chan struct{}
	err         error
	waiters     map[string]map[*waiter]struct{}
	count       int
}

// waiter is one waiting attempt: wake gets a value when an attempt on its
// key ends.
type waiter struct {
	key     string
	wake    chan struct{}
	sub     *subscription
	stopped bool
}

// listen has the waiter of an attempt on key hear the ends of the attempts
// on it from now on, once Redis confirmed the subscription. stop it when
// it no longer waits.
func (w *wakeups) listen(ctx context.Context, key string) (*waiter, error) {
	w.mu.Lock()
	sub := w.sub
	if sub == nil {
		sub = &subscription{ready: make(chan struct{}), gone: make(chan struct{}), waiters: map[string]map[*waiter]struct{}{}}
		w.sub = sub
		// Subscribing is one round trip whoever asks, and the waiters that
		// come meanwhile share it: it runs on no request's context.
		sub.ps = w.client.PSubscribe(context.WithoutCancel(ctx), globEscape(w.prefix)+"*")
		go w.receive(sub)
	}
	wt := &waiter{key: key, wake: make(chan struct{}, 1), sub: sub}
	if sub.waiters[key] == nil {
		sub.waiters[key] = map[*waiter]struct{}{}
	}
	sub.waiters[key][wt] = struct{}{}
	sub.count++
	w.mu.Unlock()
	select {
	case <-sub.ready:
		if sub.err != nil {
			w.stop(wt)
			return nil, fmt.Errorf("login lockout in Redis: subscribing: %w", sub.err)
		}
		return wt, nil
	case <-ctx.Done():
		w.stop(wt)
		return nil, fmt.Errorf("waiting for the attempts in flight: %w", ctx.Err())
	}
}

// stop ends what listen started; the last waiter closes the subscription.
// Stopping twice is stopping once.
func (w *wakeups) stop(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt.stopped {
		return
	}
	wt.stopped = true
	sub := wt.sub
	delete(sub.waiters[wt.key], wt)
	if len(sub.waiters[wt.key]) == 0 {
		delete(sub.waiters, wt.key)
	}
	sub.count--
	if sub.count == 0 {
		if w.sub == sub {
			w.sub = nil
		}
		_ = sub.ps.Close() // ends receive
	}
}

// receive confirms the subscription, then wakes the waiters of each key
// whose channel hears an end, until the subscription is closed or breaks.
// A broken one is gone: its waiters ask again and listen anew.
func (w *wakeups) receive(sub *subscription) {
	ctx := context.Background()
	confirmed := false
	for {
		msg, err := sub.ps.Receive(ctx)
		if err != nil {
			w.mu.Lock()
			if w.sub == sub {
				w.sub = nil
			}
			w.mu.Unlock()
			if !confirmed {
				sub.err = err
				close(sub.ready)
			}
			close(sub.gone)
			_ = sub.ps.Close()
			return
		}
		switch msg := msg.(type) {
		case *redis.Subscription:
			if !confirmed {
				confirmed = true
				close(sub.ready)
			}
		case *redis.Message:
			key := strings.TrimPrefix(msg.Channel, w.prefix)
			w.mu.Lock()
			for wt := range sub.waiters[key] {
				select {
				case wt.wake <- struct{}{}:
				default: // it has a wake-up pending already
				}
			}
			w.mu.Unlock()
		}
	}
}

// globEscape escapes what Redis's patterns read as wildcards, so that the
// prefix matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
