package models

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// storableText is s as text that fits a column of maxLength characters on
// both databases: bytes that are not UTF-8 become U+FFFD (PostgreSQL refuses
// them, and with them the whole write; SQLite would keep them as sent),
// control characters go (NUL among them, which PostgreSQL refuses too, and
// the escape sequences that would drive the terminal of an operator reading
// `tokenauth events`), and what is left is cut to maxLength characters
// (PostgreSQL refuses more; SQLite would keep it). Text that is already fit,
// as almost all is, comes back as it is, without a copy.
func storableText(s string, maxLength int) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return truncate(s, maxLength)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	return truncate(s, maxLength)
}
