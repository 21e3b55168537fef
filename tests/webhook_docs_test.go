package tests

import (
	"os"
	"regexp"
	"testing"
)

// codeBlocks returns the fenced blocks of language lang in docs/WEBHOOKS.md.
func codeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/WEBHOOKS.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// The Go verifier the documentation gives is the package the tests use.
func TestWebhookDocGoVerifierIsTheTestedOne(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../webhooks/verifier/verifier.go")
	if err != nil {
		t.Fatal(err)
	}
	blocks := codeBlocks(t, "go")
	if len(blocks) == 0 || blocks[0] != string(src) {
		t.Error("docs/WEBHOOKS.md's first Go block is not webhooks/verifier/verifier.go as it stands")
	}
}
