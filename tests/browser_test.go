//go:build browser

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests (the files built with the tag browser) drive a real
// Chromium, which a machine with only Go does not have: go test ./... leaves
// them out, and .ci/run builds them in with -tags browser.

// chromiumPath is where Debian's chromium package installs the browser.
// .ci/run installs it when it is missing, so a missing browser fails the
// browser tests instead of skipping them.
const chromiumPath = "/usr/bin/chromium"

// browserTestTimeout bounds one browser test, so that a page that never
// reaches the state a test waits for fails the test instead of hanging
// the run. It is no measure of speed.
const browserTestTimeout = 3 * time.Minute

// waitTimeout bounds one wait for the page to reach a state.
const waitTimeout = 30 * time.Second

// watchPage records, in every document the tab loads, what must never
// happen on the page: a Content-Security-Policy violation, an uncaught
// exception or an unhandled promise rejection. It runs before the page's
// own script (the browser injects it; the page's CSP does not apply).
const watchPage = `
window.__problems = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__problems.push('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline code'));
});
window.addEventListener('error', (e) => { window.__problems.push('uncaught: ' + e.message); });
window.addEventListener('unhandledrejection', (e) => { window.__problems.push('unhandled rejection: ' + e.reason); });
`

// Browser is one tab of a headless Chromium of its own, for one test.
type Browser struct {
	t   *testing.T
	ctx context.Context
}

// NewBrowser starts Chromium with a fresh profile and opens a tab; both
// end with the test.
func NewBrowser(t *testing.T) *Browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (apt-get install -y chromium; .ci/run installs it): %v", chromiumPath, err)
	}
	// The profile folder is made before the browser starts, so the browser
	// is closed (cleanups run last-in first-out) before it is removed.
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	// The first action starts the browser and ties its life to the context
	// it is given, so it gets the context without a deadline.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(tabCtx, browserTestTimeout)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: watchPage}); err != nil {
		t.Fatalf("installing the page watch: %v", err)
	}
	return &Browser{t: t, ctx: ctx}
}

// Do runs actions in the tab and fails the test on the first error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// Open loads url and checks that it loaded without a problem.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do(chromedp.Navigate(url))
	b.ExpectNoProblems()
}

// Eval evaluates a JavaScript expression (awaiting it when it is a promise)
// and decodes its value into out.
func (b *Browser) Eval(expression string, out any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expression, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		b.t.Fatalf("decoding the value of %s: %v (%s)", expression, err, raw)
	}
}

// Value returns the value of the form field with the id.
func (b *Browser) Value(id string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("reading #%s: %v", id, err)
	}
	return v
}

// Type focuses the field with the id, empties it, and types text as a
// person would; a trailing "\n" presses Enter.
func (b *Browser) Type(id, text string) {
	b.t.Helper()
	// chromedp.Clear only resets the value attribute, not what was typed.
	b.Do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ''`, id)),
		chromedp.SendKeys(chromedp.ID(id), text))
}

// Click clicks the element that the CSS selector finds.
func (b *Browser) Click(css string) {
	b.t.Helper()
	// Bounded like every wait: chromedp's own wait for a visible node has
	// none but the test's, and says nothing of the page when it gives up.
	b.WaitVisible(css)
	b.Do(chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible))
}

// WaitVisible waits until the element that the CSS selector finds shows.
func (b *Browser) WaitVisible(css string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`(() => {
  const e = document.querySelector(%q);
  return e !== null && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
})()`, css), css+" to show")
}

// WaitGone waits until no element matches the CSS selector.
func (b *Browser) WaitGone(css string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`document.querySelector(%q) === null`, css), css+" to go away")
}

// WaitText waits until the text of the element that the CSS selector finds
// contains want, and returns that text.
func (b *Browser) WaitText(css, want string) string {
	b.t.Helper()
	b.Until(fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').includes(%q)`, css, want),
		fmt.Sprintf("%s to say %q", css, want))
	var text string
	b.Eval(fmt.Sprintf(`document.querySelector(%q).textContent`, css), &text)
	return text
}

// Until waits until the JavaScript predicate is true; what names the
// state in the failure message, which also shows the page's text.
func (b *Browser) Until(predicate, what string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		var text string
		if raw, evalErr := chromedp.Run(b.ctx, chromedp.Evaluate[string](
			`document.body.innerText + '\n[problems: ' + (window.__problems || []).join('; ') + ']'`)); evalErr == nil {
			text = raw
		}
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, text)
	}
}

// ExpectNoProblems fails the test if the page broke its CSP or threw.
func (b *Browser) ExpectNoProblems() {
	b.t.Helper()
	var problems []string
	b.Eval(`window.__problems || []`, &problems)
	if len(problems) > 0 {
		b.t.Fatalf("the page had problems:\n%s", strings.Join(problems, "\n"))
	}
}

// Screenshot returns a PNG of the whole page.
func (b *Browser) Screenshot() []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("taking a screenshot: %v", err)
	}
	return png
}

// SessionToken returns the sign-in token the page keeps, or "" when it
// keeps none.
func (b *Browser) SessionToken() string {
	b.t.Helper()
	var token *string
	b.Eval(`JSON.parse(sessionStorage.getItem('tokenauth.session'))?.token ?? null`, &token)
	if token == nil {
		return ""
	}
	return *token
}
