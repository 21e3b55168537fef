package mail

import (
	"strings"
	"testing"
	"time"
)

// Every kind of mail renders, names its product, and shows text from
// users as text in its HTML part.
func TestTemplatesRenderEveryKind(t *testing.T) {
	for kind, subject := range subjects {
		c := content{PublicURL: "https://app.example.com", Username: `<script>alert("x")</script>`,
			Email: "a&b@example.com", Link: "https://app.example.com/reset#token=tkr_x", Expires: "then", ValidFor: "1 hour",
			SentAt: "now", TokenName: `<script>alert("t")</script>`}
		m, err := render(kind, "to@example.com", c)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if m.Subject != subject || !strings.Contains(m.Text, Product) || !strings.Contains(m.HTML, Product) {
			t.Errorf("%s: subject %q, text %q", kind, m.Subject, m.Text)
		}
		if strings.Contains(m.HTML, "<script>") {
			t.Errorf("%s: the HTML part holds a user's markup:\n%s", kind, m.HTML)
		}
		if strings.Contains(m.Text, "{{") || strings.Contains(m.HTML, "{{") {
			t.Errorf("%s: a template action was left unrendered", kind)
		}
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1 hour", 2 * time.Hour: "2 hours", 30 * time.Minute: "30 minutes",
		24 * time.Hour: "1 day", 48 * time.Hour: "2 days", 90 * time.Second: "1m30s", 90 * time.Minute: "90 minutes", 3601 * time.Second: "1h0m1s"} {
		if got := durationText(d); got != want {
			t.Errorf("durationText(%v): got %q, want %q", d, got, want)
		}
	}
}
