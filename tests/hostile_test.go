package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"tokenauth/djangoimport"
	"tokenauth/models"
	"tokenauth/routes"
)

// Hostile input: bytes that PostgreSQL refuses and SQLite stores as sent
// (NUL, what is not UTF-8), control characters, text longer than its
// column, and text that Unicode normalisation lengthens. The tests here
// find what to send them to by walking the router and the spec, not from
// a list of fields: a field, parameter or route added later is covered
// without an edit here.

// servedOperation is a route the service serves, with its description in
// the spec.
type servedOperation struct {
	method string
	route  *routers.Route
}

// servedOperations walks the router and returns every route it serves
// (once, whichever way its trailing slash is spelt) with its operation in
// the spec, in a stable order. A route the spec does not describe is left
// to TestEveryRouteIsInTheSpec.
func servedOperations(t *testing.T, s *Server) []servedOperation {
	t.Helper()
	seen := map[string]bool{}
	var ops []servedOperation
	for _, r := range s.Router.Routes() {
		req, err := http.NewRequest(r.Method, "http://127.0.0.1:8080"+ginPath(r.Path), nil)
		if err != nil {
			t.Fatal(err)
		}
		route, _, err := s.contract.findRoute(req)
		if err != nil {
			continue
		}
		if key := r.Method + " " + route.Path; !seen[key] {
			seen[key] = true
			ops = append(ops, servedOperation{method: r.Method, route: route})
		}
	}
	// By path, and a path's DELETE last, so that what it deletes was there
	// for the others.
	rank := func(o servedOperation) string {
		if o.method == http.MethodDelete {
			return "~" // after every method name
		}
		return o.method
	}
	slices.SortFunc(ops, func(a, b servedOperation) int {
		if c := strings.Compare(a.route.Path, b.route.Path); c != 0 {
			return c
		}
		return strings.Compare(rank(a), rank(b))
	})
	if len(ops) == 0 {
		t.Fatal("no route the service serves is in the spec")
	}
	return ops
}

func (o servedOperation) String() string { return o.method + " " + o.route.Path }

// parameters returns the operation's parameters of one kind (path, query,
// header), those of its path included.
func (o servedOperation) parameters(in string) []*openapi3.Parameter {
	var out []*openapi3.Parameter
	for _, list := range []openapi3.Parameters{o.route.PathItem.Parameters, o.route.Operation.Parameters} {
		for _, p := range list {
			if p.Value != nil && p.Value.In == in {
				out = append(out, p.Value)
			}
		}
	}
	return out
}

// bodySchema is the schema of the operation's JSON request body, or nil.
func (o servedOperation) bodySchema() *openapi3.Schema {
	rb := o.route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		return nil
	}
	media := rb.Value.Content.Get("application/json")
	if media == nil || media.Schema == nil {
		return nil
	}
	return media.Schema.Value
}

// requestFor fills a request for the operation, with every path parameter
// valued by param: a string to put in the path as it is, or "" for the
// parameter's example in the spec (1 when it gives none).
func (o servedOperation) requestFor(param func(name string) string) Request {
	path := o.route.Path
	for _, p := range o.parameters(openapi3.ParameterInPath) {
		v := param(p.Name)
		switch {
		case v != "":
		case p.Example != nil:
			v = url.PathEscape(fmt.Sprint(p.Example))
		case p.Schema != nil && p.Schema.Value.Example != nil:
			v = url.PathEscape(fmt.Sprint(p.Schema.Value.Example))
		default:
			v = "1"
		}
		path = strings.ReplaceAll(path, "{"+p.Name+"}", v)
	}
	return Request{Method: o.method, Path: path}
}

// textField is where a request body holds text: the keys down to a string,
// with "[]" standing for the items of a list.
type textField []string

// top is the field of the request that holds the text, which a
// validation_failed answer names.
// top is the field an answer names: the top-level key, or for a body that
// is a list of objects, the key within its object.
func (f textField) top() string {
	if len(f) > 1 && f[0] == "[]" {
		return f[1]
	}
	return f[0]
}

func (f textField) String() string { return strings.Join(f, ".") }

// textFields lists every place where a body of the schema holds text.
func textFields(schema *openapi3.Schema, at textField) []textField {
	switch {
	case schema.Type.Is("string"):
		return []textField{slices.Clone(at)}
	case schema.Type.Is("array") && schema.Items != nil:
		return textFields(schema.Items.Value, append(at, "[]"))
	}
	var out []textField
	for _, name := range sortedKeys(schema.Properties) {
		out = append(out, textFields(schema.Properties[name].Value, append(slices.Clip(at), name))...)
	}
	return out
}

// fieldSchema is the schema of the text at f.
func fieldSchema(schema *openapi3.Schema, f textField) *openapi3.Schema {
	for _, step := range f {
		if step == "[]" {
			schema = schema.Items.Value
		} else {
			schema = schema.Properties[step].Value
		}
	}
	return schema
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sampleValue is a value the schema allows, or what fixed says for a
// property of that name: every property of an object is filled in, so that
// a request gets as far into the service as its values let it.
func sampleValue(schema *openapi3.Schema, fixed func(name string) (any, bool)) any {
	switch {
	case len(schema.Enum) > 0:
		return schema.Enum[0]
	case schema.Type.Is("string") && schema.Format == "email":
		return "hostile@example.com"
	case schema.Type.Is("string"):
		return strings.Repeat("plain text", int(schema.MinLength)/10+1)
	case schema.Type.Is("integer"), schema.Type.Is("number"):
		if schema.Min != nil {
			return *schema.Min
		}
		return 1
	case schema.Type.Is("boolean"):
		return true
	case schema.Type.Is("array"):
		return []any{sampleValue(schema.Items.Value, fixed)}
	}
	obj := map[string]any{}
	for name, prop := range schema.Properties {
		if v, ok := fixed(name); ok {
			obj[name] = v
		} else {
			obj[name] = sampleValue(prop.Value, fixed)
		}
	}
	return obj
}

// withRawText returns the JSON of body with the text at f replaced by
// literal, the bytes between the quotes of a JSON string as they are sent
// (which json.Marshal could not write: it would repair them).
func withRawText(t *testing.T, body map[string]any, f textField, literal string) string {
	t.Helper()
	const marker = "hostile-text-goes-here"
	var set func(v any, steps []string) any
	set = func(v any, steps []string) any {
		if len(steps) == 0 {
			return marker
		}
		if steps[0] == "[]" {
			return []any{set(nil, steps[1:])}
		}
		obj, _ := v.(map[string]any)
		out := make(map[string]any, len(obj)+1)
		for k, x := range obj {
			out[k] = x
		}
		out[steps[0]] = set(out[steps[0]], steps[1:])
		return out
	}
	data, err := json.Marshal(set(body, f))
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.Replace(data, []byte(`"`+marker+`"`), []byte(`"`+literal+`"`), 1))
}

// notText are JSON string literals that are not text the service may take:
// each must be 400 validation_failed naming the field that holds it.
var notText = []struct{ name, literal string }{
	{"NUL", `a\u0000b`},
	{"NUL alone", `\u0000`},
	{"invalid UTF-8", "a\xff\xfeb"},
	{"NUL in overlong UTF-8", "a\xc0\x80b"},
	{"a surrogate in UTF-8", "a\xed\xa0\x80b"},
	{"UTF-8 cut short", "ab\xe2\x82"},
	{"lone high surrogate", `a\ud800b`},
	{"lone low surrogate", `\udc00`},
	{"high surrogate before another escape", `\ud83d\u0041`},
	{"two high surrogates", `\ud83d\ud83d\udd11`},
}

// oddText are JSON string literals that are text, but hostile to someone:
// any answer but a 500 will do, and what is stored must be clean.
var oddText = []struct{ name, literal string }{
	{"control characters", `a\u0001\u001b[31m\u007f\u0085\u009bb`},
	{"line breaks and tabs", `a\r\n\tb`},
	{"a right-to-left override", "\u202egnp.exe"},
	{"text that NFKC lengthens eighteen times", strings.Repeat("\ufdfa", 10)},
	{"a whole surrogate pair", `\ud83d\udd11 key`},
	{"an escaped backslash before u0000", `\\u0000`},
	{"U+FFFD as sent", "\ufffd"},
}

// TestHostileInputIsRefusedOrStoredClean sends hostile text to every text
// field of every request body, every path parameter and every query
// parameter the spec describes: text that is not text is 400
// validation_failed naming its field, text too long for its field is
// refused the same way, nothing makes a 500 (or an answer the spec does not
// describe), and whatever was stored is clean.
func TestHostileInputIsRefusedOrStoredClean(t *testing.T) {
	t.Parallel()
	// GitHub's receiver reads a body only once its signature verifies: its
	// requests are signed with a key the server trusts.
	scanner := newScanKey(t)
	s := NewServer(t, WithConfig(func(c *cfgT) { c.AllowRegistration = true; c.MaxTokensPerUser = 100000 }),
		withScanKeysFile(t, scanner))
	// The token and the article are the first of their tables: id 1, the
	// id a path parameter gets when the spec gives no example and it is not
	// the one under test.
	token := s.IssueToken(t, s.CreateUser(t, "alice", testPassword))
	writeArticle(t, s, token, "mine", "to change")
	fixed := func(name string) (any, bool) {
		switch name {
		case "username":
			return "alice", true
		case "password", "current_password":
			return testPassword, true
		}
		return nil, false
	}
	ops := servedOperations(t, s)

	fieldsSeen := 0
	for _, op := range ops {
		schema := op.bodySchema()
		if schema == nil {
			continue
		}
		base, _ := sampleValue(schema, fixed).(map[string]any)
		fields := textFields(schema, nil)
		fieldsSeen += len(fields)
		t.Run("body of "+op.String(), func(t *testing.T) {
			for _, f := range fields {
				send := func(name, literal string) *Response {
					t.Helper()
					r := op.requestFor(func(string) string { return "" })
					r.Token, r.Body = token, withRawText(t, base, f, literal)
					if op.route.Path == "/api/github/secret-scanning" {
						r.Header = scanner.sign(t, r.Body.(string))
					}
					resp := s.Do(t, r)
					if resp.Status >= 500 {
						t.Errorf("%s with %s: %d %s", f, name, resp.Status, resp.Body)
					}
					return resp
				}
				refused := func(name, literal string) {
					t.Helper()
					resp := send(name, literal)
					if resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Body), `"validation_failed"`) {
						t.Errorf("%s with %s: %d %s, want 400 validation_failed", f, name, resp.Status, resp.Body)
						return
					}
					if msg, _ := resp.JSON(t)["fields"].(map[string]any)[f.top()].(string); msg == "" {
						t.Errorf("%s with %s: the answer does not name %s: %s", f, name, f.top(), resp.Body)
					}
				}
				for _, v := range notText {
					refused(v.name, v.literal)
				}
				for _, v := range oddText {
					send(v.name, v.literal)
				}
				if limit := fieldSchema(schema, f).MaxLength; limit != nil {
					refused("one character too many", strings.Repeat("x", int(*limit)+1))
					refused("one four-byte character too many", strings.Repeat("\U0001F511", int(*limit)+1))
					send("the most characters allowed, each of four bytes", strings.Repeat("\U0001F511", int(*limit)))
				}
			}
		})
	}

	if fieldsSeen == 0 {
		t.Fatal("the spec describes no text field in any request body")
	}

	pathValues := []string{"%00", "1%00", "%FF", "%C0%80", "%ED%A0%80", "%01", "%1B%5B31m", "%E2%80%AE",
		strings.Repeat("%EF%B7%BA", 10), strings.Repeat("9", 40), "-1", "0", "1.5", strings.Repeat("x", 4000)}
	for _, op := range ops {
		params := op.parameters(openapi3.ParameterInPath)
		if len(params) == 0 {
			continue
		}
		t.Run("path of "+op.String(), func(t *testing.T) {
			for _, p := range params {
				for _, v := range pathValues {
					r := op.requestFor(func(name string) string {
						if name == p.Name {
							return v
						}
						return ""
					})
					r.Token = token
					if resp := s.Do(t, r); resp.Status >= 500 {
						t.Errorf("%s = %q: %d %s", p.Name, v, resp.Status, resp.Body)
					}
				}
			}
		})
	}

	queryValues := []string{"%00", "1%00", "%FF", "%C0%80", "%01", strings.Repeat("%EF%B7%BA", 10),
		strings.Repeat("9", 30), "-1", "", "1e3", strings.Repeat("x", 4000)}
	for _, op := range ops {
		params := op.parameters(openapi3.ParameterInQuery)
		if len(params) == 0 {
			continue
		}
		t.Run("query of "+op.String(), func(t *testing.T) {
			for _, p := range params {
				for _, v := range queryValues {
					r := op.requestFor(func(string) string { return "" })
					r.Token, r.Path = token, r.Path+"?"+url.QueryEscape(p.Name)+"="+v
					resp := s.Do(t, r)
					// None of the values is a whole number in range.
					switch {
					case resp.Status >= 500:
						t.Errorf("%s = %q: %d %s", p.Name, v, resp.Status, resp.Body)
					case !p.Schema.Value.Type.Is("integer"):
					case op.method == http.MethodHead:
						resp.Expect(t, http.StatusBadRequest) // the GET's answer, without its body
					default:
						Field(t, resp.ExpectError(t, http.StatusBadRequest, "validation_failed"), p.Name)
					}
				}
			}
		})
	}

	expectStoredTextClean(t, s)
}

// expectStoredTextClean reads every text column of every table and fails
// on a value that is not UTF-8, holds a NUL or is longer than its column;
// and, in a column with a size (one line of text: names, addresses, user
// agents), on a control character. Unsized text (an article's body) may
// hold line breaks.
func expectStoredTextClean(t *testing.T, s *Server) {
	t.Helper()
	for _, model := range models.All() {
		stmt := &gorm.Statement{DB: s.DB}
		if err := stmt.Parse(model); err != nil {
			t.Fatal(err)
		}
		for _, field := range stmt.Schema.Fields {
			if field.DBName == "" || field.FieldType.Kind() != reflect.String && field.DataType != schema.String {
				continue
			}
			var values []string
			if err := s.DB.Table(stmt.Schema.Table).Pluck(field.DBName, &values).Error; err != nil {
				t.Fatalf("reading %s.%s: %v", stmt.Schema.Table, field.DBName, err)
			}
			for _, v := range values {
				problem := ""
				switch {
				case !utf8.ValidString(v):
					problem = "is not UTF-8"
				case strings.ContainsRune(v, 0):
					problem = "holds a NUL"
				case field.Size > 0 && utf8.RuneCountInString(v) > field.Size:
					problem = fmt.Sprintf("is longer than %d characters", field.Size)
				case field.Size > 0 && strings.ContainsFunc(v, unicode.IsControl):
					problem = "holds a control character"
				}
				if problem != "" {
					t.Errorf("%s.%s %s: %.80q", stmt.Schema.Table, field.DBName, problem, v)
				}
			}
		}
	}
}

// hostileHeaderValues are header values a client can send: net/http takes
// any byte in a header but the control characters other than tab, so these
// are what gets past it. (The cleaning of each kind is pinned one by one
// below, in userAgents; here every route meets each kind once.)
var hostileHeaderValues = []string{
	"agent \xff\xfe \xc0\x80 \xed\xa0\x80/1.0 (bytes that are not UTF-8)",
	"agent\t\xc2\x85\xc2\x9b[31m\u202e/1.0 (tab, C1 controls, a right-to-left override)",
	strings.Repeat("\ufdfa", 100),
	strings.Repeat("\U0001F511", 520),
}

// storedHeaders are the headers a request carries hostile values in: those
// the service stores (User-Agent; X-Forwarded-For, from a trusted proxy,
// as the client IP) and others that clients and proxies send, in case one
// is ever stored. Headers that steer the request (Authorization,
// Content-Type, Origin) are not among them: a hostile value there changes
// the answer, as it should.
var storedHeaders = []string{"User-Agent", "X-Forwarded-For", "X-Real-IP", "Forwarded", "Referer", "X-Request-ID"}

// TestHostileHeadersLoseNoEvent runs every route twice, on two instances
// built alike: on one with ordinary headers, on the other with hostile ones
// (and the same again with every header parameter the spec names). Every
// request must get the same status from both, and both must hold the same
// security events afterwards: a hostile User-Agent may not turn a failure
// into a 500, or keep it out of the record. What the hostile instance
// stored must be clean.
func TestHostileHeadersLoseNoEvent(t *testing.T) {
	t.Parallel()
	setup := WithConfig(func(c *cfgT) {
		c.AllowRegistration = true
		c.MaxTokensPerUser = 100000
		c.TrustedProxies = []string{"127.0.0.1", "::1"}
	})
	plain, hostile := NewServer(t, setup), NewServer(t, setup)
	type instance struct {
		s     *Server
		alice *models.User
	}
	var instances []instance
	for _, s := range []*Server{plain, hostile} {
		alice := s.CreateUser(t, "alice", testPassword)
		writeArticle(t, s, s.IssueToken(t, alice), "mine", "to change")
		instances = append(instances, instance{s, alice})
	}
	ops := servedOperations(t, plain)
	for i, value := range hostileHeaderValues {
		// The index keeps the values apart once cleaned, as the plain
		// instance's agents are apart: which logins come from a new client
		// must not differ.
		value = fmt.Sprintf("%d %s", i, value)
		for _, op := range ops {
			var statuses [2]int
			for n, in := range instances {
				secret := in.s.IssueToken(t, in.alice)
				id := strconv.FormatUint(uint64(in.s.tokenID(t, secret)), 10)
				fixed := func(name string) (any, bool) {
					switch name {
					case "username":
						return "alice", true
					case "password", "current_password", "new_password":
						return testPassword, true
					case "tokens":
						return []string{secret}, true
					}
					return nil, false
				}
				r := op.requestFor(func(name string) string {
					if strings.HasPrefix(op.route.Path, "/api/tokens/") {
						return id // the request's own token
					}
					return ""
				})
				r.Token = secret
				if schema := op.bodySchema(); schema != nil {
					r.Body = sampleValue(schema, fixed)
				}
				r.Header = map[string]string{"User-Agent": fmt.Sprintf("%d plain agent/1.0", i), "X-Forwarded-For": "203.0.113.7"}
				if in.s == hostile {
					for _, name := range storedHeaders {
						r.Header[name] = value
					}
					for _, p := range op.parameters(openapi3.ParameterInHeader) {
						r.Header[p.Name] = value
					}
				}
				statuses[n] = in.s.Do(t, r).Status
			}
			if statuses[0] >= 500 || statuses[1] != statuses[0] {
				t.Errorf("%s with headers %.40q: %d, where ordinary headers get %d", op, value, statuses[1], statuses[0])
			}
		}
	}
	if got, want := allEvents(t, hostile), allEvents(t, plain); !slices.Equal(got, want) {
		t.Errorf("with hostile headers the events are\n%s\nwith ordinary ones\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	expectStoredTextClean(t, hostile)
}

// allEvents reads every security event as "user type/reason token
// new_client", sorted: the events of one statement that revokes several
// tokens are written in the order PostgreSQL finds the rows, which two
// databases need not share.
func allEvents(t *testing.T, s *Server) []string {
	t.Helper()
	var events []models.SecurityEvent
	if err := s.DB.Order("id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(events))
	for i, e := range events {
		user, token := "-", "-"
		if e.UserID != nil {
			user = strconv.FormatUint(uint64(*e.UserID), 10)
		}
		if e.TokenID != nil {
			token = strconv.FormatUint(uint64(*e.TokenID), 10)
		}
		out[i] = fmt.Sprintf("%s %s/%s %s %v", user, e.Type, e.Reason, token, e.NewClient)
	}
	slices.Sort(out)
	return out
}

// lastEvent returns the user's latest security event.
func lastEvent(t *testing.T, s *Server, userID uint) models.SecurityEvent {
	t.Helper()
	var e models.SecurityEvent
	if err := s.DB.Where("user_id = ?", userID).Order("id DESC").Take(&e).Error; err != nil {
		t.Fatalf("the user's latest event: %v", err)
	}
	return e
}

// userAgents are User-Agent headers that are not fit to store as sent,
// with what is stored of them.
var userAgents = []struct{ name, sent, stored string }{
	{"not UTF-8", "agent \xff\xfe/1.0", "agent \ufffd/1.0"},
	{"NUL in overlong UTF-8", "agent \xc0\x80/1.0", "agent \ufffd/1.0"},
	{"a surrogate in UTF-8", "agent \xed\xa0\x80/1.0", "agent \ufffd/1.0"},
	{"C1 controls", "agent \xc2\x85\xc2\x9b[31m/1.0", "agent [31m/1.0"},
	{"tabs", "agent\t/1.0", "agent/1.0"},
	{"longer than its column", strings.Repeat("\U0001F511", 600), strings.Repeat("\U0001F511", 512)},
}

// TestFailedLoginWithHostileUserAgentIsRecorded: a wrong password for an
// existing user gets the answer an unknown user gets, whatever the
// User-Agent, and its login_failed event is written with the agent
// cleaned.
func TestFailedLoginWithHostileUserAgentIsRecorded(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice := s.CreateUser(t, "alice", testPassword)
	for _, ua := range userAgents {
		t.Run(ua.name, func(t *testing.T) {
			for _, username := range []string{"alice", "nobody"} {
				s.Do(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"User-Agent": ua.sent},
					Body: map[string]string{"username": username, "password": "not the password"}}).
					ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
			}
			e := lastEvent(t, s, alice.ID)
			if e.Type != models.EventLoginFailed || e.Reason != "wrong_password" || e.UserAgent != ua.stored || e.IP != "127.0.0.1" {
				t.Errorf("event %s/%s from %q, agent %q; want login_failed/wrong_password from 127.0.0.1, agent %q",
					e.Type, e.Reason, e.IP, e.UserAgent, ua.stored)
			}
		})
	}
}

// TestLockedLoginWithHostileUserAgentIsRecorded: a locked username gets 429
// whatever the User-Agent, whether it exists or not, and an existing one
// records the refusal.
func TestLockedLoginWithHostileUserAgentIsRecorded(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.LoginUserFailures = 1 }))
	alice := s.CreateUser(t, "alice", testPassword)
	for _, username := range []string{"alice", "nobody"} {
		s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": username, "password": "wrong"}}).
			ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
	for _, ua := range userAgents {
		t.Run(ua.name, func(t *testing.T) {
			for _, username := range []string{"alice", "nobody"} {
				s.Do(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"User-Agent": ua.sent},
					Body: map[string]string{"username": username, "password": testPassword}}).
					ExpectError(t, http.StatusTooManyRequests, "rate_limited")
			}
			if e := lastEvent(t, s, alice.ID); e.Type != models.EventLoginRateLimited || e.UserAgent != ua.stored {
				t.Errorf("event %s, agent %q; want login_rate_limited, agent %q", e.Type, e.UserAgent, ua.stored)
			}
		})
	}
}

// TestLeakReportWithHostileUserAgentRevokes: a leak report revokes the
// token whatever the User-Agent of whoever reports it.
func TestLeakReportWithHostileUserAgentRevokes(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice := s.CreateUser(t, "alice", testPassword)
	for _, ua := range userAgents {
		t.Run(ua.name, func(t *testing.T) {
			token := s.IssueToken(t, alice)
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Header: map[string]string{"User-Agent": ua.sent},
				Body: map[string]any{"tokens": []string{token}}}).Expect(t, http.StatusAccepted)
			s.Do(t, Request{Path: "/api/tokens/current/", Token: token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
			e := lastEvent(t, s, alice.ID)
			if e.Type != models.EventTokenRevoked || e.Reason != models.RevokedByLeakReport || e.UserAgent != ua.stored {
				t.Errorf("event %s/%s, agent %q; want token_revoked/leak_report, agent %q", e.Type, e.Reason, e.UserAgent, ua.stored)
			}
		})
	}
}

// TestStringsThatAreNotTextAreRefused: the cases of the found bug, and the
// escapes that look like the refused ones but are text.
func TestStringsThatAreNotTextAreRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	refused := []struct {
		name, path, body, field string
	}{
		{"NUL in a login's username", "/api/login/", `{"username":"al\u0000ice","password":"x"}`, "username"},
		{"NUL in the second of the leaked tokens", "/api/tokens/revoke-leaked/", `{"tokens":["tka_x","tka_\u0000"]}`, "tokens"},
		{"bytes that are not UTF-8 in an article", "/api/articles/", "{\"title\":\"t\",\"body\":\"caf\xe9\"}", "body"},
		{"a lone surrogate in a token name", "/api/tokens/", `{"name":"\udfff"}`, "name"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: "POST", Path: tc.path, Token: token, Body: tc.body}).
				ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, tc.field)
		})
	}
	var stored int64
	if err := s.DB.Model(&models.Article{}).Count(&stored).Error; err != nil || stored != 0 {
		t.Errorf("articles stored: %d (%v), want none", stored, err)
	}

	accepted := []struct {
		name, body, want string
	}{
		{"an escaped backslash before u0000", `{"name":"\\u0000"}`, `\u0000`},
		{"a whole surrogate pair", `{"name":"\ud83d\udd11 key"}`, "\U0001F511 key"},
		{"U+FFFD as sent", `{"name":"\ufffd"}`, "\ufffd"},
		{"escapes of every other kind", `{"name":"\"\/\u00e9\u4e2d"}`, `"/é中`},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			var created tokenJSON
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: tc.body}).Expect(t, http.StatusCreated).Decode(t, &created)
			if created.Name != tc.want {
				t.Errorf("name: got %q, want %q", created.Name, tc.want)
			}
		})
	}
}

// TestUsernameFoldedPastItsColumnIsRefused: a username's folded form
// (NFKC, lower case) is what is stored and unique, so it must fit its 150
// characters, however short the name as typed.
func TestUsernameFoldedPastItsColumnIsRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.AllowRegistration = true }))
	register := func(username string) *Response {
		return s.Do(t, Request{Method: "POST", Path: "/api/register/",
			Body: map[string]string{"username": username, "email": "someone@example.com", "password": "a sturdy passphrase 43"}})
	}
	for _, username := range []string{
		strings.Repeat("\ufdfa", 9),  // 9 letters, 162 once folded
		strings.Repeat("\ufb03", 51), // the ligature ﬃ: 51 letters, 153 once folded
	} {
		Field(t, register(username).ExpectError(t, http.StatusBadRequest, "validation_failed"), "username")
	}
	var users int64
	if err := s.DB.Model(&models.User{}).Count(&users).Error; err != nil || users != 0 {
		t.Fatalf("users stored: %d (%v), want none", users, err)
	}
	// Folded to 144 and to 150 characters, they fit, and log in.
	for _, fits := range []string{strings.Repeat("\ufdfa", 8), strings.Repeat("\ufb03", 50)} {
		register(fits).Expect(t, http.StatusCreated)
		s.Login(t, fits, "a sturdy passphrase 43")
	}
}

// lookups is a resource that hands a query parameter to the database
// unchecked, as an extension might: only the last line of defence, not the
// checks at the edges, stands between it and a 500.
func lookups(api routes.API, db *gorm.DB) {
	api.GET("/lookups", routes.Public, func(c *gin.Context) error {
		u, err := models.FindUserByUsername(c.Request.Context(), db, c.Query("username"))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, gin.H{"id": u.ID})
		return nil
	})
}

const lookupPaths = `  /api/lookups/:
    get:
      operationId: lookUpUser
      summary: The id of the user with a username.
      security: []
      parameters:
        - { name: username, in: query, required: true, schema: { type: string } }
      responses:
        "200":
          description: The user's id.
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [id]
                properties:
                  id: { type: integer }
        "400": { $ref: "#/components/responses/BadRequest" }
        "404": { $ref: "#/components/responses/NotFound" }
        "500": { $ref: "#/components/responses/InternalError" }
`

// TestValueTheDatabaseRefusesIs400: a value PostgreSQL refuses (here a NUL,
// SQLSTATE 22021) that no check stopped is 400 invalid_request, naming
// nothing, and the log says which SQLSTATE without quoting the value.
// SQLite takes the same value, and finds no such user.
func TestValueTheDatabaseRefusesIs400(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithResource(lookups, lookupPaths))
	s.CreateUser(t, "alice", testPassword)
	s.Do(t, Request{Path: "/api/lookups/?username=ALICE"}).Expect(t, http.StatusOK)

	resp := s.Do(t, Request{Path: "/api/lookups/?username=hunter2%00"})
	if freshDatabaseBase() == "" {
		resp.ExpectError(t, http.StatusNotFound, "not_found")
		return
	}
	body := resp.ExpectError(t, http.StatusBadRequest, "invalid_request")
	if body["fields"] != nil || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("the answer names a field or blames the token: %v %v", body, resp.Header)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, "SQLSTATE 22021") || strings.Contains(logs, "hunter2") {
		t.Errorf("the log should name SQLSTATE 22021 and not quote the value:\n%s", logs)
	}
}

// TestDjangoImportRefusesUsernamesFoldedTooLong: a Django username that
// fits as typed but not once folded stops the import, named, before
// anything is written.
func TestDjangoImportRefusesUsernamesFoldedTooLong(t *testing.T) {
	t.Parallel()
	source, db := copyFixture(t)
	if err := db.Exec(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES ('!', 0, ?, '', '', '', 0, 1, '2020-01-01 00:00:00')`, strings.Repeat("\ufdfa", 9)).Error; err != nil {
		t.Fatal(err)
	}
	s := NewServer(t)
	before := snapshot(t, s.DB)
	report, err := djangoimport.Import(t.Context(), s.DB, apiTokenOptions(source))
	if err == nil || !strings.Contains(err.Error(), "longer than 150 characters once normalised") {
		t.Fatalf("got %v (report %+v), want the import refused for the folded username", err, report)
	}
	if after := snapshot(t, s.DB); after != before {
		t.Errorf("the refused import wrote:\n%s", after)
	}
}

// TestControlBytesInHeadersStopAtTheServer: a header holding NUL or
// another control character but tab is refused by the HTTP server itself
// (400), before any route runs: no password is checked, so there is no
// login to record.
func TestControlBytesInHeadersStopAtTheServer(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice := s.CreateUser(t, "alice", testPassword)
	body := `{"username":"alice","password":"not the password"}`
	for _, ua := range []string{"agent\x00/1.0", "agent\x1b[31m/1.0", "agent\x7f/1.0"} {
		conn := s.dial(t)
		fmt.Fprintf(conn, "POST /api/login/ HTTP/1.1\r\nHost: api\r\nUser-Agent: %s\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\n\r\n%s", ua, len(body), body)
		if resp := readResponse(t, conn); resp.Status != http.StatusBadRequest {
			t.Errorf("User-Agent %q: %d %s, want 400 from the HTTP server", ua, resp.Status, resp.Body)
		}
	}
	if events := eventLog(t, s, alice.ID); len(events) != 0 {
		t.Errorf("events %v, want none: no login was attempted", events)
	}
}
