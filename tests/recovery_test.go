package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestPanicGivesJSON500AndALogLine(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRoutes(func(r *gin.Engine) {
		r.GET("/test/panic", func(*gin.Context) { panic("internal detail 7f3a") })
	}))
	resp := s.Do(t, Request{Path: "/test/panic", Header: map[string]string{"X-Request-ID": "req-panic-1"}, OffSpec: true})
	body := resp.ExpectError(t, http.StatusInternalServerError, "internal_error")
	if len(body) != 2 || strings.Contains(string(resp.Body), "7f3a") || strings.Contains(string(resp.Body), ".go") {
		t.Errorf("the client learned about the panic: %s", resp.Body)
	}
	if got := resp.Header.Get("X-Request-ID"); got != "req-panic-1" {
		t.Errorf("X-Request-ID: got %q, want the client's", got)
	}
	var panicLine, requestLine map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.Logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["request_id"] != "req-panic-1" {
			continue
		}
		switch entry["msg"] {
		case "panic while serving a request":
			panicLine = entry
		case "request":
			requestLine = entry
		}
	}
	if panicLine == nil {
		t.Fatalf("no panic log line with the request id:\n%s", s.Logs.String())
	}
	if panicLine["panic"] != "internal detail 7f3a" || !strings.Contains(panicLine["stack"].(string), "recovery_test.go") {
		t.Errorf("the panic line lacks the detail or the stack: %v", panicLine)
	}
	if requestLine == nil || requestLine["status"] != float64(500) {
		t.Errorf("the request line does not say 500: %v", requestLine)
	}
	// The server is fine afterwards.
	s.Do(t, Request{Path: "/healthz"}).Expect(t, http.StatusOK)
}
