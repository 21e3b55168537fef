package cli

import (
	"fmt"
	"os"
	"testing"

	"tokenauth/password"
)

// TestMain lets this test binary serve as the password-hash worker of the
// serve commands the tests run: serve starts its own binary as the worker
// (password.SelfWorker), and that binary is this one.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == password.WorkerCommand {
		if err := password.ServeWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
