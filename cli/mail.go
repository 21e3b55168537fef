package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	netmail "net/mail"
	"text/tabwriter"
	"time"

	"tokenauth/keyring"
	"tokenauth/mail"
	"tokenauth/models"
)

// deliveryState is a queued row's state and next attempt as the listings
// print them: waiting (in the listing's word), sending while a worker's
// claim on it holds, or given up (in its word), with no next attempt.
func deliveryState(d *models.Delivery, waiting, givenUp string) (state, next string) {
	switch {
	case d.FailedAt != nil:
		return givenUp, "-"
	case d.ClaimedUntil != nil && d.ClaimedUntil.After(time.Now()):
		return "sending", d.NextAttemptAt.UTC().Format(time.RFC3339)
	}
	return waiting, d.NextAttemptAt.UTC().Format(time.RFC3339)
}

// listMail prints the mail still to send and the mail given up.
func listMail(ctx context.Context, e *env, _ []string) error {
	const limit = 1000
	mails, err := models.ListMail(ctx, e.db, limit)
	if err != nil {
		return err
	}
	if len(mails) == 0 {
		fmt.Fprintln(e.stdout, "no mail waits to be sent, and none was given up")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tKIND\tTO\tCREATED\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, m := range mails {
		state, next := deliveryState(&m.Delivery, "pending", "failed")
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%q\n", m.ID, state, m.Kind, m.Recipient,
			m.CreatedAt.UTC().Format(time.RFC3339), m.Attempts, next, m.LastError)
	}
	if len(mails) == limit {
		fmt.Fprintf(w, "(the first %d only)\n", limit)
	}
	return w.Flush()
}

func sendTestMailCommand(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	to := fs.String("to", "", "the address to send the test mail to (required)")
	return func(ctx context.Context, e *env, _ []string) error {
		if *to == "" {
			fs.Usage()
			return usageError{errors.New("--to is required")}
		}
		if err := checkAddress(*to); err != nil {
			return usageError{fmt.Errorf("--to: %w", err)}
		}
		kr, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
		if err != nil {
			return err
		}
		msg, err := mail.NewComposer(kr, e.cfg.PublicURL).TestMessage(*to, time.Now())
		if err != nil {
			return err
		}
		sender, err := mail.NewSender(e.cfg.SMTPURL, e.cfg.MailFrom, nil, e.log)
		if err != nil {
			return err
		}
		reply, err := sender.Send(ctx, msg)
		if err != nil {
			return fmt.Errorf("the mail was not sent: %w", err)
		}
		if e.cfg.SMTPURL == "" {
			fmt.Fprintln(e.stdout, "SMTP_URL is empty: the mail was written to the log (standard error), not sent")
			return nil
		}
		fmt.Fprintf(e.stdout, "sent to %s; the server answered: %s\n", *to, reply)
		return nil
	}
}

// checkAddress accepts a bare address such as alice@example.com.
func checkAddress(address string) error {
	parsed, err := netmail.ParseAddress(address)
	if err != nil || parsed.Address != address {
		return fmt.Errorf("%q is not an address such as alice@example.com", address)
	}
	return nil
}

func setEmailCommand(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	verified := fs.Bool("verified", false, "mark the address verified (you checked it is the user's)")
	return func(ctx context.Context, e *env, args []string) error {
		if err := checkAddress(args[1]); err != nil {
			return usageError{err}
		}
		u, err := findUser(ctx, e, args[0])
		if err != nil {
			return err
		}
		err = models.SetEmail(ctx, e.db, u, args[1], *verified)
		if errors.Is(err, models.ErrConflict) {
			return fmt.Errorf("another account has verified %s", args[1])
		}
		if err != nil {
			return err
		}
		state := "unverified"
		if *verified {
			state = "verified"
		}
		fmt.Fprintf(e.stdout, "set the address of %s to %s (%s)\n", u.Username, args[1], state)
		return nil
	}
}
