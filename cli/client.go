package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"tokenauth/models"
)

// clientCommand manages resource-server clients: create NAME, list,
// revoke CLIENT_ID.
func clientCommand(ctx context.Context, e *env, args []string) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch {
	case sub == "create" && len(args) == 2:
		return createClient(ctx, e, args[1])
	case sub == "list" && len(args) == 1:
		return listClients(ctx, e)
	case sub == "revoke" && len(args) == 2:
		return revokeClient(ctx, e, args[1])
	}
	return usageError{errors.New("usage: tokenauth client create NAME | list | revoke CLIENT_ID")}
}

func createClient(ctx context.Context, e *env, name string) error {
	c, err := models.NewResourceServer(name)
	if err != nil {
		var invalid *models.ValidationError
		if errors.As(err, &invalid) {
			return usageError{fmt.Errorf("NAME: %s", invalid.Fields["name"])}
		}
		return err
	}
	if err := models.CreateClient(ctx, e.db, c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created client %q\nclient_id:     %s\nclient_secret: %s\n"+
		"The secret is shown this once; only its hash is kept.\n", c.Name, c.ClientID, c.Secret)
	return nil
}

func listClients(ctx context.Context, e *env) error {
	clients, err := models.ListClients(ctx, e.db)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT ID\tNAME\tCREATED\tREVOKED")
	for _, c := range clients {
		fmt.Fprintf(w, "%s\t%q\t%s\t%s\n", c.ClientID, c.Name, c.CreatedAt.UTC().Format(time.RFC3339), formatTime(c.RevokedAt))
	}
	return w.Flush()
}

func revokeClient(ctx context.Context, e *env, clientID string) error {
	err := models.RevokeClient(ctx, e.db, clientID)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no live client with id %q", clientID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked client %s\n", clientID)
	return nil
}
