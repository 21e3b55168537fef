package models

// All returns every model whose table the service needs, in the order
// config.Migrate creates them (GORM also orders them by their foreign keys).
//
// A new resource adds its model here, and only here: Go cannot list the
// types of a package, and registering from init functions would spread the
// schema over hidden side effects. One explicit list keeps what the
// migration creates readable in one line, and lets the migrate subcommand
// run without building the HTTP router. A model left out fails its
// resource's first test (no such table).
func All() []any {
	return []any{
		&User{}, &APIToken{}, &SecurityEvent{}, &ImportedUser{}, &ImportedToken{}, &ServerSecret{},
		&LinkToken{}, &Mail{}, &PasswordResetRequest{}, &WebhookEndpoint{}, &WebhookDelivery{},
		&TOTPCredential{}, &RecoveryCode{}, &MFAChallenge{}, &ResourceServer{},
		&Article{},
	}
}
