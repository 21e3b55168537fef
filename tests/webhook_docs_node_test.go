//go:build tools

package tests

import (
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenauth/webhooks"
	"tokenauth/webhooks/verifier"
)

// The JavaScript verifier the documentation gives, run by Node.js, agrees
// with the Go one on signatures the service makes: it accepts them, and
// refuses a changed body, another secret, an old or future time and
// malformed headers.
func TestWebhookDocJavaScriptVerifier(t *testing.T) {
	t.Parallel()
	blocks := codeBlocks(t, "js")
	if len(blocks) != 1 {
		t.Fatalf("docs/WEBHOOKS.md has %d JavaScript blocks, want 1", len(blocks))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verify.js"), []byte(blocks[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	harness := `const { verifyTokenauthSignature } = require("./verify.js");
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map((c) => {
  try { return verifyTokenauthSignature(c.header, Buffer.from(c.body, "utf8"), c.secret, 300, c.now) ? "ok" : "false"; }
  catch (e) { return e.message; }
})));
`
	if err := os.WriteFile(filepath.Join(dir, "harness.js"), []byte(harness), 0o600); err != nil {
		t.Fatal(err)
	}
	type jsCase struct {
		Header string `json:"header"`
		Body   string `json:"body"`
		Secret string `json:"secret"`
		Now    int64  `json:"now"`
	}
	at := time.Unix(1767225600, 0)
	body := `{"id":42,"type":"token_revoked","user":{"id":1,"username":"zoë"},"reason":"leak_report"}`
	good := webhooks.Sign("whsec_k3y", at, []byte(body))
	cases := []jsCase{
		{good, body, "whsec_k3y", at.Unix()},
		{good, body, "whsec_k3y", at.Add(4 * time.Minute).Unix()},
		{good, strings.Replace(body, "42", "43", 1), "whsec_k3y", at.Unix()},
		{good, body, "whsec_other", at.Unix()},
		{good, body, "whsec_k3y", at.Add(6 * time.Minute).Unix()},
		{good, body, "whsec_k3y", at.Add(-6 * time.Minute).Unix()},
		{"", body, "whsec_k3y", at.Unix()},
		{"t=1767225600", body, "whsec_k3y", at.Unix()},
		{"t=abc,v1=" + good[len("t=1767225600,v1="):], body, "whsec_k3y", at.Unix()},
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.CommandContext(t.Context(), "node", "harness.js")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node (needed for this test; .ci/run installs it): %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("node printed %q", out)
	}
	for i, c := range cases {
		goErr := verifier.Verify(c.Header, []byte(c.Body), c.Secret, time.Unix(c.Now, 0), 5*time.Minute)
		want := "ok"
		if goErr != nil {
			want = goErr.Error()
		}
		if got[i] != want {
			t.Errorf("case %d: JavaScript says %q, Go says %q", i, got[i], want)
		}
	}
	if got[0] != "ok" || got[2] == "ok" || got[4] == "ok" {
		t.Errorf("JavaScript verdicts %v: the good signature must pass, a changed body and an old time must not", got)
	}
}
