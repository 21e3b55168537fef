package controllers

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
)

// FuzzBindLogin feeds arbitrary bodies to the strict binding of the login
// request: no panic; a body it accepts gives a request within every limit,
// holding the client's text as sent (UTF-8, no NUL, nothing replaced by
// U+FFFD); a body it refuses gets one of the documented 4xx errors, never a
// 500.
func FuzzBindLogin(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"a sturdy passphrase 42"}`,
		`{"username":"alice","password":"x","token_name":"Mobile App"}`,
		`{"username":"alice","password":"x"} {}`, `[{"username":"alice"}]`, `null`, `"x"`, ``,
		`{"username":{"$ne":null},"password":"x"}`, `{"username":"alice","password":12}`,
		`{"username":"alice","password":"x","admin":true}`, `{"username":"alice","password":"x","token_name":"a\u0000b"}`,
		`{"username":"a","username":"b","password":"x"}`, "\ufeff{}", `{"username":"` + strings.Repeat("a", 151) + `","password":"x"}`,
		`{"username":"al\u0000ice","password":"x"}`, `{"username":"alice","password":"\ud83d\udd11\\u0000"}`,
		`{"username":"alice","password":"\ud83d\u0041"}`, "{\"username\":\"caf\xc3\",\"password\":\"x\"}",
	} {
		f.Add([]byte(seed))
	}
	gin.SetMode(gin.ReleaseMode)
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/api/login/", bytes.NewReader(body))
		c.Request.Body = http.MaxBytesReader(w, c.Request.Body, limit)
		var req loginRequest
		err := bindJSON(c, &req)
		if err != nil {
			resp, known := apierror.From(err)
			if !known {
				t.Fatalf("%q: an error the service does not know: %v", body, err)
			}
			switch resp.Code {
			case "invalid_json", "body_too_large":
			case "validation_failed":
				if len(resp.Fields) == 0 {
					t.Fatalf("%q: validation_failed without fields", body)
				}
			default:
				t.Fatalf("%q: unexpected code %s", body, resp.Code)
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("a body of %d bytes over the limit was accepted", len(body))
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("%q: accepted a body that is not an object", body)
		}
		if n := utf8.RuneCountInString(req.Username); req.Username == "" || n > 150 {
			t.Fatalf("%q: accepted username of %d characters", body, n)
		}
		if n := utf8.RuneCountInString(req.Password); req.Password == "" || n > 256 {
			t.Fatalf("%q: accepted password of %d characters", body, n)
		}
		if n := utf8.RuneCountInString(req.TokenName); n > 100 || strings.ContainsFunc(req.TokenName, unicode.IsControl) {
			t.Fatalf("%q: accepted token name %q", body, req.TokenName)
		}
		if !utf8.Valid(body) {
			t.Fatalf("%q: accepted a body that is not UTF-8", body)
		}
		sentReplacement := bytes.Contains(body, []byte("\ufffd")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`))
		for _, text := range []string{req.Username, req.Password, req.TokenName} {
			if strings.ContainsRune(text, 0) {
				t.Fatalf("%q: accepted a NUL in %q", body, text)
			}
			if strings.ContainsRune(text, utf8.RuneError) && !sentReplacement {
				t.Fatalf("%q: accepted %q, where text the client did not send was replaced by U+FFFD", body, text)
			}
		}
	})
}
