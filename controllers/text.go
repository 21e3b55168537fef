package controllers

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// badText finds the strings of a JSON body that are not text the service
// may take: those holding a NUL character (PostgreSQL refuses it, SQLite
// stores it), bytes that are not UTF-8, or a \u escape of half a surrogate
// pair (PostgreSQL refuses neither, because encoding/json quietly decodes
// both into U+FFFD: the client's text would be stored as something else).
// It names, for each, the field of the request that holds it: the top-level
// key, whether the string is its value or sits in a list or an object
// within it. It looks at the body rather than at the decoded request, since
// decoding has already replaced what it looks for; so every string of
// every request is checked, whatever its type, with no tag to remember.
// body must be one JSON object that has decoded.
func badText(body []byte) map[string]string { return badTextAt(body, 1) }

// badTextAt is badText for the objects at depth keyDepth of the body: 1
// for a body that is one object, 2 for a list of objects, whose strings
// are named by the key of the object they sit in.
func badTextAt(body []byte, keyDepth int) map[string]string {
	// JSON writes NUL and surrogates only as \u escapes: a body that has
	// none and is UTF-8, as nearly all are, has nothing to find.
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) {
		return nil
	}
	var fields map[string]string
	dec := json.NewDecoder(bytes.NewReader(body))
	// depth counts the open objects and lists; at keyDepth, inside an
	// object whose keys name the fields, a string token alternates between
	// key and value.
	depth, expectKey, field := 0, false, ""
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return fields
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '{' || tok == '[' {
				depth++
			} else {
				depth--
			}
			expectKey = depth == keyDepth
			continue
		case string:
			if depth == keyDepth && expectKey {
				field, expectKey = tok, false
				continue
			}
			// The string's literal is the rest of the token's span, from
			// its opening quote on (before it: spaces, ':' or ',').
			literal := body[start:dec.InputOffset()]
			literal = literal[bytes.IndexByte(literal, '"'):]
			if msg := textProblem(literal); msg != "" {
				if fields == nil {
					fields = map[string]string{}
				}
				if _, seen := fields[field]; !seen {
					fields[field] = msg
				}
			}
		}
		if depth == keyDepth {
			expectKey = true // a value of a named object ended
		}
	}
}

// textProblem says what is wrong with a JSON string literal (quotes
// included) as text, or "" when nothing is.
func textProblem(literal []byte) string {
	if !utf8.Valid(literal) {
		return "must be UTF-8 text"
	}
	for i := 0; i < len(literal)-1; i++ {
		if literal[i] != '\\' {
			continue
		}
		if literal[i+1] != 'u' {
			i++ // a two-character escape, such as \\ or \"
			continue
		}
		r := hex4(literal[i+2:])
		switch {
		case r == 0:
			return "must not contain NUL characters"
		case 0xD800 <= r && r < 0xDC00 && len(literal) >= i+12 && literal[i+6] == '\\' && literal[i+7] == 'u' &&
			0xDC00 <= hex4(literal[i+8:]) && hex4(literal[i+8:]) < 0xE000:
			i += 11 // a whole surrogate pair: one character
		case 0xD800 <= r && r < 0xE000:
			return "must be UTF-8 text (it holds half a surrogate pair)"
		default:
			i += 5
		}
	}
	return ""
}

// hex4 reads the four hex digits of a \u escape that has decoded, so they
// are there and are hex.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}
