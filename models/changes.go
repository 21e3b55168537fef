package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// On PostgreSQL, every committed change that can make a cached token lookup
// wrong is announced with NOTIFY by triggers, so that every instance (and
// not only the one that made the change) can drop what it remembers. The
// triggers live in the database, not in the code that makes the changes:
// the operator subcommands, a manual UPDATE by a DBA and any code written
// later are all announced, and the announcement is part of the transaction
// (delivered at commit, never for a rolled-back change).
//
// A payload is "t:<ids>" (tokens), "u:<ids>" (users, meaning all their
// tokens) or "*" (everything; used for TRUNCATE and for statements touching
// more than changeBatch rows, whose ids would not fit in a payload).

// ChangeChannelQuery returns, on a connection, the channel on which changes
// to the tables of its current schema are announced. Channels are per
// database, so the schema is part of the name: two deployments (or two
// tests) in different schemas of one database do not hear each other.
const ChangeChannelQuery = "SELECT left('tokenauth_' || current_schema(), 63)"

// changeBatch bounds the ids in one payload (PostgreSQL allows 8000 bytes).
const changeBatch = 500

// The function announces the rows a statement changed. Only what a cached
// lookup shows counts: a token's record of use (last_used_at, last_ip,
// last_user_agent, networks) never does, nor an expiry
// that moved later (sliding expiry, written behind every few seconds for
// every active token, would otherwise flush the caches of all instances);
// any other column of a token or of a user does, so that columns added
// later are covered without touching this.
const changeTriggersSQL = `
CREATE OR REPLACE FUNCTION tokenauth_announce_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
	channel text := left('tokenauth_' || TG_TABLE_SCHEMA, 63);
	kind text := CASE TG_TABLE_NAME WHEN 'users' THEN 'u' ELSE 't' END;
	ids text;
	n bigint;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify(channel, '*');
		RETURN NULL;
	ELSIF TG_OP = 'DELETE' THEN
		SELECT count(*), string_agg(o.id::text, ',') INTO n, ids FROM old_rows o;
	ELSIF kind = 'u' THEN
		SELECT count(*), string_agg(o.id::text, ',') INTO n, ids
		FROM old_rows o JOIN new_rows r ON r.id = o.id
		WHERE to_jsonb(o) IS DISTINCT FROM to_jsonb(r);
	ELSE
		SELECT count(*), string_agg(o.id::text, ',') INTO n, ids
		FROM old_rows o JOIN new_rows r ON r.id = o.id
		WHERE (to_jsonb(o) - 'last_used_at' - 'expires_at' - 'last_ip' - 'last_user_agent' - 'networks')
			IS DISTINCT FROM (to_jsonb(r) - 'last_used_at' - 'expires_at' - 'last_ip' - 'last_user_agent' - 'networks')
			OR (r.expires_at IS NOT NULL AND (o.expires_at IS NULL OR r.expires_at < o.expires_at));
	END IF;
	IF n > %[1]d THEN
		PERFORM pg_notify(channel, '*');
	ELSIF n > 0 THEN
		PERFORM pg_notify(channel, kind || ':' || ids);
	END IF;
	RETURN NULL;
END
$fn$;
`

// Transition tables allow one event per trigger, hence three per table.
var changeTriggers = []struct{ suffix, event, referencing string }{
	{"updated", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"},
	{"deleted", "DELETE", "REFERENCING OLD TABLE AS old_rows"},
	{"truncated", "TRUNCATE", ""},
}

// InstallChangeNotifications creates or replaces the triggers that announce
// changes to users and tokens (PostgreSQL only). Instances starting at
// once take turns, under an advisory lock.
func InstallChangeNotifications(ctx context.Context, db *gorm.DB) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext('tokenauth_announce_change'))").Error; err != nil {
			return err
		}
		if err := tx.Exec(fmt.Sprintf(changeTriggersSQL, changeBatch)).Error; err != nil {
			return err
		}
		for _, table := range []string{"users", "api_tokens"} {
			for _, tr := range changeTriggers {
				name := "tokenauth_" + table + "_" + tr.suffix
				if err := tx.Exec(fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", name, table)).Error; err != nil {
					return err
				}
				create := fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION tokenauth_announce_change()",
					name, tr.event, table, tr.referencing)
				if err := tx.Exec(create).Error; err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("installing change notifications: %w", translate(err))
	}
	return nil
}

// Change names what a committed change may have made wrong in a
// remembered token lookup: some tokens, every token of some users, or
// everything.
type Change struct {
	// All means every cached lookup may be wrong.
	All      bool
	TokenIDs []uint
	UserIDs  []uint
}

func (c Change) empty() bool { return !c.All && len(c.TokenIDs) == 0 && len(c.UserIDs) == 0 }

var errBadChange = errors.New("malformed change announcement")

// ParseChange reads an announcement's payload.
func ParseChange(payload string) (Change, error) {
	if payload == "*" {
		return Change{All: true}, nil
	}
	kind, list, ok := strings.Cut(payload, ":")
	if !ok || list == "" || kind != "t" && kind != "u" {
		return Change{}, errBadChange
	}
	var ids []uint
	for field := range strings.SplitSeq(list, ",") {
		id, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return Change{}, errBadChange
		}
		ids = append(ids, uint(id))
	}
	if kind == "t" {
		return Change{TokenIDs: ids}, nil
	}
	return Change{UserIDs: ids}, nil
}
