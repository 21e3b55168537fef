package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCreateUserValidatesEmailsAsTheAPIDoes gives the operator's
// createuser and PATCH /api/profile/ the same addresses: each is accepted
// by both or refused by both.
func TestCreateUserValidatesEmailsAsTheAPIDoes(t *testing.T) {
	t.Parallel()
	s := startService(t, nil)
	token := s.login(t)
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." +
		strings.Repeat("d", 60) + "." + strings.Repeat("e", 10) + ".org" // 263 characters
	cases := []struct {
		email string
		valid bool
	}{
		{"carol@example.com", true},
		{"carol+tag@mail.example.co.uk", true},
		{`"carol smith"@example.org`, true},
		{"notanemail", false},
		{"carol@", false},
		{"@example.com", false},
		{"carol@example", false},
		{" carol@example.com", false},
		{"carol@example.com\n", false},
		{long, false},
	}
	for i, tc := range cases {
		body, _ := json.Marshal(map[string]string{"email": tc.email})
		req, _ := http.NewRequest(http.MethodPatch, "http://"+s.addr+"/api/profile/", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// 200, or 202 where a new address waits for its confirmation.
		apiAccepts := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted
		if !apiAccepts && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("PATCH /api/profile/ %q: status %d", tc.email, resp.StatusCode)
		}

		getenv := lookupIn(s.env)
		var out, errOut strings.Builder
		err = run(t.Context(), []string{"createuser", "--username", fmt.Sprintf("user%d", i), "--email", tc.email},
			getenv, strings.NewReader(testPassword+"\n"), &out, &errOut)
		cliAccepts := err == nil
		if !cliAccepts && !strings.Contains(err.Error(), "email") {
			t.Errorf("createuser --email %q failed for another reason: %v", tc.email, err)
		}

		if apiAccepts != tc.valid || cliAccepts != tc.valid {
			t.Errorf("%q: the API accepts it: %t, createuser accepts it: %t; want %t for both", tc.email, apiAccepts, cliAccepts, tc.valid)
		}
	}
}
