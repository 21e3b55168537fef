package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"tokenauth/keyring"
	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/webhooks"
)

// webhookCommand runs tokenauth webhook SUBCOMMAND.
func webhookCommand(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("webhook needs a subcommand: add, list, deliveries, remove or test")}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "add":
		return addWebhook(ctx, e, rest)
	case "list":
		if len(rest) != 0 {
			return usageError{errors.New("webhook list takes no argument")}
		}
		return listWebhooks(ctx, e)
	case "deliveries", "remove", "test":
		if len(rest) != 1 {
			return usageError{fmt.Errorf("webhook %s takes the endpoint's ID", sub)}
		}
		id, err := strconv.ParseUint(rest[0], 10, 32)
		if err != nil || id == 0 {
			return usageError{fmt.Errorf("%q is not an endpoint ID (tokenauth webhook list shows them)", rest[0])}
		}
		switch sub {
		case "deliveries":
			return listWebhookDeliveries(ctx, e, uint(id))
		case "remove":
			return removeWebhook(ctx, e, uint(id))
		}
		return testWebhook(ctx, e, uint(id))
	}
	return usageError{fmt.Errorf("unknown webhook subcommand %q: add, list, deliveries, remove or test", args[0])}
}

// addWebhook parses URL [--events a,b], flags before or after the URL.
func addWebhook(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("tokenauth webhook add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	events := fs.String("events", "", "the event types to send, comma-separated (default: all)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError{errors.New("webhook add takes the endpoint's URL")}
	}
	rawURL := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("webhook add takes one URL, not %q too", fs.Arg(0))}
	}
	var wanted []string
	for _, ev := range strings.Split(*events, ",") {
		if ev = strings.TrimSpace(ev); ev != "" {
			wanted = append(wanted, ev)
		}
	}
	kr, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
	if err != nil {
		return err
	}
	ep, secret, err := webhooks.NewEndpoint(kr, rawURL, wanted, models.EventTypes())
	if err != nil {
		return usageError{err}
	}
	if err := models.AddWebhookEndpoint(ctx, e.db, ep); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added endpoint %d: %s\nsigning secret (shown once, keep it with the receiver): %s\n",
		ep.ID, ep.URL, secret)
	return nil
}

func listWebhooks(ctx context.Context, e *env) error {
	endpoints, err := models.ListWebhookEndpoints(ctx, e.db)
	if err != nil {
		return err
	}
	if len(endpoints) == 0 {
		fmt.Fprintln(e.stdout, "no webhook endpoints (tokenauth webhook add URL)")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tURL\tEVENTS\tCREATED\tWAITING\tDELIVERED\tGIVEN UP\tLAST ERROR")
	for _, ep := range endpoints {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%q\n", ep.ID, ep.URL, orAll(ep.Events),
			ep.CreatedAt.UTC().Format(time.RFC3339), ep.Pending, ep.Delivered, ep.Failed, ep.LastError)
	}
	return w.Flush()
}

func orAll(events string) string {
	if events == "" {
		return "all"
	}
	return events
}

// listWebhookDeliveries prints the deliveries of an endpoint waiting and
// given up.
func listWebhookDeliveries(ctx context.Context, e *env, id uint) error {
	if _, err := findWebhook(ctx, e, id); err != nil {
		return err
	}
	const limit = 1000
	rows, err := models.ListWebhookDeliveries(ctx, e.db, id, limit)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintln(e.stdout, "no delivery waits, and none was given up")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tEVENT\tTYPE\tUSER\tCREATED\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, d := range rows {
		state, next := deliveryState(&d.Delivery, "waiting", "given up")
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%d\t%s\t%d\t%s\t%q\n", d.ID, state, d.EventID, d.EventType, d.UserKey,
			d.CreatedAt.UTC().Format(time.RFC3339), d.Attempts, next, d.LastError)
	}
	if len(rows) == limit {
		fmt.Fprintf(w, "(the first %d only)\n", limit)
	}
	return w.Flush()
}

func findWebhook(ctx context.Context, e *env, id uint) (*models.WebhookEndpoint, error) {
	ep, err := models.FindWebhookEndpoint(ctx, e.db, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("no webhook endpoint %d (tokenauth webhook list shows them)", id)
	}
	return ep, err
}

func removeWebhook(ctx context.Context, e *env, id uint) error {
	err := models.RemoveWebhookEndpoint(ctx, e.db, id)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no webhook endpoint %d (tokenauth webhook list shows them)", id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed endpoint %d and its deliveries\n", id)
	return nil
}

// testWebhook sends a signed webhook_test event to an endpoint at once.
func testWebhook(ctx context.Context, e *env, id uint) error {
	ep, err := findWebhook(ctx, e, id)
	if err != nil {
		return err
	}
	kr, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
	if err != nil {
		return err
	}
	d := webhooks.NewDispatcher(e.db, kr, metrics.New(), webhooks.Policy, e.log)
	if err := d.SendTest(ctx, ep); err != nil {
		return fmt.Errorf("the test event was not delivered to %s: %w", ep.URL, err)
	}
	fmt.Fprintf(e.stdout, "delivered a webhook_test event to %s\n", ep.URL)
	return nil
}
