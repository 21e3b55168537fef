package controllers

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// A user is the answer most often asked for with a token (GET
// /api/profile/), and encoding/json spends on it, by reflection and a copy
// of its result, about what authenticating the request costs. So
// userResponse writes its own JSON: byte for byte what encoding/json writes
// for it, which FuzzUserResponseJSON checks.

// jsonContentType is the Content-Type of JSON answers, one value shared by
// all of them (net/http only reads header values).
var jsonContentType = []string{"application/json; charset=utf-8"}

// renderUser answers with code and u as JSON.
func renderUser(c *gin.Context, code int, u userResponse) {
	var buf [256]byte
	writeJSON(c, code, u.appendJSON(buf[:0]))
}

// writeJSON answers with code and body, JSON written by hand.
func writeJSON(c *gin.Context, code int, body []byte) {
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Status(code)
	_, _ = c.Writer.Write(body)
}

// appendJSON appends u as encoding/json marshals it.
func (u userResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(u.ID), 10)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, u.Username)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, u.Email)
	b = append(b, `,"email_verified":`...)
	b = strconv.AppendBool(b, u.EmailVerified)
	b = append(b, `,"mfa_enabled":`...)
	b = strconv.AppendBool(b, u.MFAEnabled)
	b = append(b, `,"is_active":`...)
	b = strconv.AppendBool(b, u.IsActive)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, u.CreatedAt)
	b = append(b, `,"last_login_at":`...)
	b = appendJSONTimePtr(b, u.LastLoginAt)
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does, for the years
// it accepts (0 to 9999; the database holds no others).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s quoted as encoding/json quotes strings: the
// HTML-sensitive <, > and &, U+2028 and U+2029 and control characters
// escaped, invalid UTF-8 replaced with U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is yet to be copied as it is
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
