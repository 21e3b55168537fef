package controllers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/models"
)

// A user may hold MAX_TOKENS_PER_USER tokens, and encoding/json spent on
// their list, by reflection, a time.Time marshaller per date and a copy of
// each marshaller's output, a fifth of what the list costs. So a token
// writes its own JSON, as a user does (userjson.go): byte for byte what
// encoding/json writes for it, which FuzzTokenResponseJSON checks.

// tokenList is the JSON of a list of tokens, {"tokens": [...]}, written
// as the tokens are read.
type tokenList struct {
	b []byte
	n int
}

func newTokenList() *tokenList {
	return &tokenList{b: append(make([]byte, 0, 8192), `{"tokens":[`...)}
}

// add appends r to the list.
func (l *tokenList) add(r tokenResponse) {
	if l.n > 0 {
		l.b = append(l.b, ',')
	}
	l.b = r.appendJSON(l.b)
	l.n++
}

// json returns the list as encoding/json marshals it.
func (l *tokenList) json() []byte { return append(l.b, "]}"...) }

// render answers with code and the list.
func (l *tokenList) render(c *gin.Context, code int) { writeJSON(c, code, l.json()) }

// renderToken answers with code and t as JSON.
func renderToken(c *gin.Context, code int, t tokenResponse) {
	writeJSON(c, code, t.appendJSON(make([]byte, 0, 512)))
}

// appendJSON appends r as encoding/json marshals it.
func (r *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(r.ID), 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, r.Name)
	b = append(b, `,"prefix":`...)
	b = appendJSONString(b, r.Prefix)
	b = append(b, `,"scopes":`...)
	b = appendJSONStrings(b, r.Scopes)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, r.CreatedAt)
	b = append(b, `,"last_used_at":`...)
	b = appendJSONTimePtr(b, r.LastUsedAt)
	b = append(b, `,"last_ip":`...)
	b = appendJSONStringPtr(b, r.LastIP)
	b = append(b, `,"last_user_agent":`...)
	b = appendJSONStringPtr(b, r.LastUserAgent)
	b = append(b, `,"networks":`...)
	b = appendNetworkUses(b, r.Networks)
	b = append(b, `,"expires_at":`...)
	b = appendJSONTimePtr(b, r.ExpiresAt)
	b = append(b, `,"previous_secret_expires_at":`...)
	b = appendJSONTimePtr(b, r.PreviousSecretExpiresAt)
	b = append(b, `,"current":`...)
	b = strconv.AppendBool(b, r.Current)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, r.Enabled)
	b = append(b, `,"allowed_ips":`...)
	b = appendJSONStrings(b, r.AllowedIPs)
	b = append(b, `,"metadata":`...)
	b = appendRawJSON(b, r.Metadata)
	b = append(b, `,"rate_limit":`...)
	if r.RateLimit == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"requests":`...)
		b = strconv.AppendInt(b, int64(r.RateLimit.Requests), 10)
		b = append(b, `,"per":`...)
		b = appendJSONString(b, r.RateLimit.Per)
		b = append(b, '}')
	}
	b = append(b, `,"legacy":`...)
	b = strconv.AppendBool(b, r.Legacy)
	if r.Token != "" {
		b = append(b, `,"token":`...)
		b = appendJSONString(b, r.Token)
	}
	return append(b, '}')
}

// appendJSONStrings appends ss as a JSON array, or null when nil.
func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

func appendJSONTimePtr(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendJSONTime(b, *t)
}

func appendJSONStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendNetworkUses appends uses as models.NetworkUse's MarshalJSON
// writes each of them.
func appendNetworkUses(b []byte, uses models.NetworkUses) []byte {
	if uses == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, u := range uses {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"network":`...)
		b = appendJSONString(b, models.NetworkString(u.Network))
		b = append(b, `,"last_used_at":`...)
		b = appendJSONTime(b, u.ShownLastUsedAt())
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendRawJSON appends the metadata as encoding/json writes a
// json.RawMessage: compacted, with <, >, &, U+2028 and U+2029 escaped. The
// metadata is stored compact, and is copied as it is unless it holds one
// of those; stored JSON that is not valid is written as null.
func appendRawJSON(b []byte, m json.RawMessage) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	if !bytes.ContainsAny(m, " \t\r\n<>&\u2028\u2029") {
		return append(b, m...)
	}
	var compact, escaped bytes.Buffer
	if err := json.Compact(&compact, m); err != nil {
		return append(b, "null"...)
	}
	json.HTMLEscape(&escaped, compact.Bytes())
	return append(b, escaped.Bytes()...)
}
