package cli

import (
	"context"
	"errors"
	"flag"

	"tokenauth/djangoimport"
)

// importDjangoCommand wraps djangoimport.Import for the command line.
func importDjangoCommand(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	from := fs.String("from", "", "the Django database: a postgres:// URL or the path of a SQLite file (required)")
	kind := fs.String("token-kind", djangoimport.KindAPIToken,
		"apitoken (the APIToken model, 64-character hex keys) or authtoken (Django REST framework, 40-character keys)")
	tokenTable := fs.String("token-table", "",
		"the token table: required for apitoken (such as accounts_apitoken); authtoken_token by default for authtoken")
	userTable := fs.String("user-table", djangoimport.DefaultUserTable, "the table of Django's user model")
	dryRun := fs.Bool("dry-run", false, "do the whole import and report it, then roll it back")
	countsAsUse := fs.Bool("import-counts-as-use", false,
		"record the import as the last use of every imported token, so that TOKEN_IDLE_TIMEOUT counts from now")
	return func(ctx context.Context, e *env, _ []string) error {
		if *from == "" {
			fs.Usage()
			return usageError{errors.New("--from is required")}
		}
		report, err := djangoimport.Import(ctx, e.db, djangoimport.Options{
			Source: *from, UserTable: *userTable, TokenKind: *kind, TokenTable: *tokenTable, DryRun: *dryRun,
			ImportCountsAsUse: *countsAsUse, IdleTimeout: e.cfg.TokenIdleTimeout, MaxTokensPerUser: e.cfg.MaxTokensPerUser,
		})
		if err != nil {
			return err
		}
		report.Print(e.stdout)
		return nil
	}
}
