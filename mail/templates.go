package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"tokenauth/models"
)

//go:embed templates
var templateFiles embed.FS

// Product is the name mails sign with.
const Product = "tokenauth"

// subjects are the subject lines of the kinds of mail.
var subjects = map[string]string{
	models.MailPasswordReset:     "Reset your " + Product + " password",
	models.MailVerifyEmail:       "Verify your email address for " + Product,
	models.MailEmailChange:       "Confirm your new email address for " + Product,
	models.MailEmailChangeNotice: "Your " + Product + " email address is being changed",
	models.MailTokenExpiring:     "A " + Product + " token of yours expires soon",
	models.MailTokenExpired:      "A " + Product + " token of yours has expired",
	models.MailMFADisabled:       "Two-factor authentication was turned off for your " + Product + " account",
	models.MailRecoveryCodeUsed:  "A recovery code was used to sign in to your " + Product + " account",
	kindTest:                     Product + " test mail",
}

// kindTest is the kind of the test mail of tokenauth sendtestmail, which
// is sent at once and never stored.
const kindTest = "test"

// template is the text and HTML form of one kind of mail.
type template struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates are parsed once, at start-up, from the embedded files; they
// are only read afterwards. A broken one panics at start-up, which the
// tests rule out.
var templates = func() map[string]template {
	out := map[string]template{}
	for kind := range subjects {
		out[kind] = template{
			text: texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/"+kind+".txt")),
			html: htmltemplate.Must(htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/layout.html")).
				ParseFS(templateFiles, "templates/"+kind+".html")),
		}
	}
	return out
}()

// content is what a mail's templates may show. Nothing secret but Link.
type content struct {
	Product, PublicURL, Subject string
	Username                    string
	// Email is the address the mail is about: the one to verify, or the
	// new one of a change.
	Email string
	Link  string
	// Expires and ValidFor say when the link stops working.
	Expires, ValidFor string
	SentAt            string
	// TokenName is the name of the token a notice of expiry is about.
	TokenName string
}

// Message is a mail to send.
type Message struct {
	Kind    string `json:"-"`
	To      string `json:"-"`
	Subject string `json:"-"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

// render fills in the templates of kind.
func render(kind, to string, c content) (Message, error) {
	t, ok := templates[kind]
	if !ok {
		return Message{}, fmt.Errorf("no template for mail of kind %q", kind)
	}
	c.Product, c.Subject = Product, subjects[kind]
	var text, html bytes.Buffer
	if err := t.text.Execute(&text, c); err != nil {
		return Message{}, fmt.Errorf("rendering %s.txt: %w", kind, err)
	}
	if err := t.html.ExecuteTemplate(&html, "layout.html", c); err != nil {
		return Message{}, fmt.Errorf("rendering %s.html: %w", kind, err)
	}
	return Message{Kind: kind, To: to, Subject: c.Subject, Text: text.String(), HTML: html.String()}, nil
}

// timeText writes t the way mails show times.
func timeText(t time.Time) string {
	return t.UTC().Format("Monday 2 January 2006, 15:04 UTC")
}

// durationText writes d in words: "1 hour", "30 minutes", "2 days".
func durationText(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	// Go writes 1h30m as "1h30m0s": drop the zero seconds.
	text := d.String()
	if strings.HasSuffix(text, "m0s") {
		text = strings.TrimSuffix(text, "0s")
	}
	return text
}
