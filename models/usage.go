package models

import (
	"context"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Usage is what using a token changes: when it was last used, from which
// client, from which networks lately and, for a sliding login token, its
// new expiry.
type Usage struct {
	LastUsedAt time.Time
	ExpiresAt  *time.Time
	// IP and UserAgent are the client of the use, as the request gave them
	// (cleaned when written).
	IP, UserAgent string
	// Networks are the networks this process saw the token used from,
	// newest first (see NetworkUses.Merge).
	Networks NetworkUses
}

// UsageBatch bounds the tokens WriteUsage takes at once (PostgreSQL
// allows 65535 parameters in a statement).
const UsageBatch = 500

// WriteUsage records the uses of the tokens ids (at most UsageBatch) in
// one transaction of at most three statements, whatever the number of
// tokens: it reads the networks the database has for them (locking their
// rows, so that two instances flushing at once merge rather than
// overwrite), writes every column in one portable statement
// (UPDATE ... SET last_used_at = CASE id WHEN ? THEN ? ... END WHERE id IN (...)),
// and records a token_used_from_new_network event for each network a
// token was used from that it had not been before, unless that use was
// its first. A revoked token keeps the last use it had.
func WriteUsage(ctx context.Context, db *gorm.DB, ids []uint, uses map[uint]Usage) error {
	return translate(db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var stored []struct {
			ID         uint
			UserID     uint
			LastUsedAt *time.Time
			Networks   NetworkUses
		}
		if err := tx.Model(&APIToken{}).Clauses(clause.Locking{Strength: "UPDATE"}).
			Select("id", "user_id", "last_used_at", "networks").
			Where("revoked_at IS NULL AND id IN ?", ids).Order("id").Find(&stored).Error; err != nil {
			return err
		}
		merged := make(map[uint]NetworkUses, len(stored))
		var events []SecurityEvent
		for _, row := range stored {
			u := uses[row.ID]
			merged[row.ID] = row.Networks.Merge(u.Networks)
			events = append(events, newNetworkEvents(row.UserID, row.ID, row.LastUsedAt == nil && len(row.Networks) == 0,
				row.Networks, u)...)
		}
		if err := updateUsage(tx, ids, uses, merged); err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		return tx.Create(&events).Error
	}))
}

// newNetworkEvents are the events of the networks of u that known does
// not have. When the token was never used before, the oldest of them is
// its first use, which is no news.
func newNetworkEvents(userID, tokenID uint, neverUsed bool, known NetworkUses, u Usage) []SecurityEvent {
	var fresh NetworkUses
	for _, n := range u.Networks {
		if !known.Has(n.Network) {
			fresh = append(fresh, n)
		}
	}
	slices.SortStableFunc(fresh, func(a, b NetworkUse) int { return a.LastUsedAt.Compare(b.LastUsedAt) })
	if neverUsed && len(fresh) > 0 {
		fresh = fresh[1:]
	}
	events := make([]SecurityEvent, 0, len(fresh))
	for _, n := range fresh {
		ip, agent := NetworkString(n.Network), ""
		if p, ok := NetworkOf(u.IP); ok && p == n.Network {
			ip, agent = u.IP, u.UserAgent
		}
		events = append(events, SecurityEvent{UserID: idRef(userID), Type: EventTokenNewNetwork, TokenID: idRef(tokenID),
			IP: storableText(ip, clientIPMaxLength), UserAgent: storableText(agent, userAgentMaxLength),
			CreatedAt: n.LastUsedAt})
	}
	return events
}

// updateUsage writes the uses in one statement.
func updateUsage(tx *gorm.DB, ids []uint, uses map[uint]Usage, networks map[uint]NetworkUses) error {
	var sql strings.Builder
	args := make([]any, 0, 11*len(ids)+1)
	column := func(name string, value func(id uint) (any, bool)) {
		started := false
		for _, id := range ids {
			v, ok := value(id)
			if !ok {
				continue
			}
			if !started {
				if sql.Len() > 0 {
					sql.WriteString(",")
				}
				sql.WriteString(" " + name + " = CASE id")
				started = true
			}
			sql.WriteString(" WHEN ? THEN ?")
			args = append(args, id, v)
		}
		if started {
			sql.WriteString(" ELSE " + name + " END")
		}
	}
	column("last_used_at", func(id uint) (any, bool) { return uses[id].LastUsedAt, true })
	column("expires_at", func(id uint) (any, bool) {
		if e := uses[id].ExpiresAt; e != nil {
			return *e, true
		}
		return nil, false
	})
	column("last_ip", func(id uint) (any, bool) {
		u := uses[id]
		return storableText(u.IP, clientIPMaxLength), u.IP != ""
	})
	column("last_user_agent", func(id uint) (any, bool) {
		u := uses[id]
		return storableText(u.UserAgent, userAgentMaxLength), u.IP != ""
	})
	column("networks", func(id uint) (any, bool) {
		n, ok := networks[id]
		if !ok || len(n) == 0 {
			return nil, false
		}
		v, err := n.Value()
		return v, err == nil
	})
	args = append(args, ids)
	return tx.Exec("UPDATE api_tokens SET"+sql.String()+" WHERE revoked_at IS NULL AND id IN ?", args...).Error
}
