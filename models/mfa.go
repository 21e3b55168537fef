package models

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"gorm.io/gorm"

	"tokenauth/secondfactor"
)

// Errors of the second factor.
var (
	// ErrMFAEnabled: the account has a second factor already.
	ErrMFAEnabled = errors.New("the second factor is on already")
	// ErrMFANotEnabled: the account has no second factor (or, for a
	// confirmation, no enrolment under way).
	ErrMFANotEnabled = errors.New("the second factor is off")
	// ErrInvalidMFACode: a TOTP code or recovery code that is wrong, used
	// already, or not of the right form.
	ErrInvalidMFACode = errors.New("invalid second-factor code")
	// ErrInvalidMFAToken: an mfa_token that is unknown, used, expired, or
	// dead of too many wrong codes.
	ErrInvalidMFAToken = errors.New("invalid mfa_token")
)

// Security event types of the second factor.
const (
	EventMFAEnabled               = "mfa_enabled"
	EventMFADisabled              = "mfa_disabled"
	EventRecoveryCodesRegenerated = "recovery_codes_regenerated"
	EventRecoveryCodeUsed         = "recovery_code_used"
	EventMFAFailed                = "mfa_failed"
)

// Kinds of mail about the second factor.
const (
	MailMFADisabled      = "mfa_disabled"
	MailRecoveryCodeUsed = "recovery_code_used"
)

// Sealer seals and opens secrets that must be read back, and hashes with
// a key those that need only be compared: keyring.Keyring, under
// SECRET_KEY.
type Sealer interface {
	Seal(purpose string, plaintext []byte) (string, error)
	Open(purpose, sealed string) ([]byte, error)
	HMAC(purpose string, msg []byte) []byte
}

// TOTPCredential is a user's TOTP secret, sealed under the server's key:
// pending until a code from it is confirmed, then the second factor of
// the account. LastStep is the time step of the last code accepted, so
// that no code is accepted twice.
type TOTPCredential struct {
	ID           uint   `gorm:"primaryKey"`
	UserID       uint   `gorm:"not null;uniqueIndex"`
	User         User   `gorm:"constraint:OnDelete:CASCADE" json:"-"`
	SealedSecret string `gorm:"size:255;not null" json:"-"`
	ConfirmedAt  *time.Time
	LastStep     int64 `gorm:"not null;default:0"`
	CreatedAt    time.Time
}

// RecoveryCode is one single-use code that stands in for a TOTP code, kept
// as its keyed hash (HMAC-SHA256 under the server's key: ten characters of
// base32 are too few to survive a plain hash being guessed at).
type RecoveryCode struct {
	ID        uint   `gorm:"primaryKey"`
	UserID    uint   `gorm:"not null;index:idx_recovery_codes_user_hash,priority:1"`
	User      User   `gorm:"constraint:OnDelete:CASCADE" json:"-"`
	CodeHash  string `gorm:"size:64;not null;index:idx_recovery_codes_user_hash,priority:2" json:"-"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

// MFAChallenge is the second step of a login whose password was right on
// an account with a second factor: the mfa_token, of which only the
// SHA-256 is stored. It keeps what the login asked for (the token's name),
// lives MFAChallengeTTL, dies after MFAChallengeMaxFailures wrong codes,
// and is used once. PasswordDigest is the SHA-256 of the password hash the
// login matched: a password changed meanwhile voids the challenge.
type MFAChallenge struct {
	ID             uint   `gorm:"primaryKey"`
	UserID         uint   `gorm:"not null;index"`
	User           User   `gorm:"constraint:OnDelete:CASCADE" json:"-"`
	KeyHash        string `gorm:"size:64;not null;uniqueIndex" json:"-"`
	TokenName      string `gorm:"size:100;not null"`
	PasswordDigest string `gorm:"size:64;not null" json:"-"`
	Failures       int    `gorm:"not null;default:0"`
	ExpiresAt      time.Time
	UsedAt         *time.Time
	CreatedAt      time.Time
}

// The limits of an mfa_token.
const (
	MFAChallengeTTL         = 5 * time.Minute
	MFAChallengeMaxFailures = 5
	// MFATokenPrefix starts every mfa_token.
	MFATokenPrefix = "tkm_"
)

// Keyring purposes of the second factor.
const (
	totpSealPurpose     = "totp secret"
	recoveryCodePurpose = "recovery code"
)

// totpPurpose binds a sealed secret to its user: a sealed value copied to
// another user's row does not open.
func totpPurpose(userID uint) string {
	return totpSealPurpose + " " + strconv.FormatUint(uint64(userID), 10)
}

// recoveryCodeHash is the keyed hash of a normalized recovery code.
func recoveryCodeHash(s Sealer, code string) string {
	return hex.EncodeToString(s.HMAC(recoveryCodePurpose, []byte(code)))
}

// StartTOTPEnrolment stores secret, sealed, as the user's pending TOTP
// credential, replacing any earlier pending one. ErrMFAEnabled when the
// account has a confirmed one.
func StartTOTPEnrolment(ctx context.Context, db *gorm.DB, s Sealer, userID uint, secret string) error {
	sealed, err := s.Seal(totpPurpose(userID), []byte(secret))
	if err != nil {
		return err
	}
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		if err := lockUser(tx, userID); err != nil {
			return Change{}, err
		}
		var existing []TOTPCredential
		if err := tx.Where("user_id = ?", userID).Find(&existing).Error; err != nil {
			return Change{}, err
		}
		if len(existing) > 0 && existing[0].ConfirmedAt != nil {
			return Change{}, ErrMFAEnabled
		}
		if err := tx.Where("user_id = ?", userID).Delete(&TOTPCredential{}).Error; err != nil {
			return Change{}, err
		}
		return Change{}, tx.Create(&TOTPCredential{UserID: userID, SealedSecret: sealed}).Error
	})
}

// ConfirmTOTP turns the user's pending credential on, given a code from
// it: the account has a second factor from then on. In the same
// transaction it stores the hashes of the recovery codes (replacing any),
// revokes the user's other login tokens (sessions signed in without the
// second factor; the tokens the user created stay), and records
// mfa_enabled. A wrong code is a ValidationError on "code" (the token is
// fine); no pending credential is ErrMFANotEnabled.
func ConfirmTOTP(ctx context.Context, db *gorm.DB, s Sealer, userID, currentTokenID uint, code string, recovery []string) error {
	cred, secret, err := loadTOTP(ctx, db, s, userID, false)
	if err != nil {
		return err
	}
	now := nowOf(db)
	step, ok := secondfactor.Match(secret, code, now, cred.LastStep)
	if !ok {
		return invalid("code", "is not the code your app shows now")
	}
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{userID}}
		res := tx.Model(&TOTPCredential{}).Where("id = ? AND confirmed_at IS NULL", cred.ID).
			UpdateColumns(map[string]any{"confirmed_at": now, "last_step": step})
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected != 1 {
			// Confirmed or replaced meanwhile.
			return change, ErrMFANotEnabled
		}
		if err := tx.Model(&User{}).Where("id = ?", userID).UpdateColumn("mfa_enabled_at", now).Error; err != nil {
			return change, err
		}
		if err := replaceRecoveryCodes(tx, s, userID, recovery); err != nil {
			return change, err
		}
		var sessions []uint
		if err := tx.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL AND kind = ? AND id <> ?",
			userID, KindLogin, currentTokenID).Pluck("id", &sessions).Error; err != nil {
			return change, err
		}
		if err := revokeIDs(tx, userID, sessions, RevokedByMFAEnabled, now); err != nil {
			return change, err
		}
		change.TokenIDs = sessions
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(userID), Type: EventMFAEnabled})
	})
}

// RevokedByMFAEnabled is the reason of the sessions revoked when the
// second factor is turned on.
const RevokedByMFAEnabled = "mfa_enabled"

// DisableMFA turns the user's second factor off: the credential and the
// recovery codes are deleted, and mfa_disabled recorded with reason (the
// user, or "operator"). An operator's reset (revokeAll) also revokes
// every token of the user. notice, when not nil, is queued to tell the
// user. ErrMFANotEnabled when there was none to turn off.
func DisableMFA(ctx context.Context, db *gorm.DB, userID uint, reason string, revokeAll bool, notice *Mail) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		change := Change{UserIDs: []uint{userID}}
		res := tx.Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Delete(&TOTPCredential{})
		if res.Error != nil {
			return change, res.Error
		}
		if res.RowsAffected == 0 {
			return change, ErrMFANotEnabled
		}
		if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
			return change, err
		}
		if err := tx.Model(&User{}).Where("id = ?", userID).UpdateColumn("mfa_enabled_at", nil).Error; err != nil {
			return change, err
		}
		if revokeAll {
			ids, err := revokeWhere(tx, RevokeQuery{UserID: userID, Reason: RevokedByOperator})
			if err != nil {
				return change, err
			}
			change.TokenIDs = ids
		}
		if notice != nil {
			notice.UserID = idRef(userID)
			if err := queueMail(tx, notice); err != nil {
				return change, err
			}
		}
		return change, recordEvent(tx, SecurityEvent{UserID: idRef(userID), Type: EventMFADisabled, Reason: reason})
	})
}

// RegenerateRecoveryCodes replaces the user's recovery codes with codes
// (plain, hashed here) and records recovery_codes_regenerated.
// ErrMFANotEnabled when the account has no second factor.
func RegenerateRecoveryCodes(ctx context.Context, db *gorm.DB, s Sealer, userID uint, codes []string) error {
	return commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		var on int64
		if err := tx.Model(&TOTPCredential{}).Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Count(&on).Error; err != nil {
			return Change{}, err
		}
		if on == 0 {
			return Change{}, ErrMFANotEnabled
		}
		if err := replaceRecoveryCodes(tx, s, userID, codes); err != nil {
			return Change{}, err
		}
		return Change{}, recordEvent(tx, SecurityEvent{UserID: idRef(userID), Type: EventRecoveryCodesRegenerated})
	})
}

func replaceRecoveryCodes(tx *gorm.DB, s Sealer, userID uint, codes []string) error {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return err
	}
	rows := make([]RecoveryCode, len(codes))
	for i, c := range codes {
		rows[i] = RecoveryCode{UserID: userID, CodeHash: recoveryCodeHash(s, secondfactor.NormalizeRecoveryCode(c))}
	}
	if len(rows) == 0 {
		return nil
	}
	return tx.Create(&rows).Error
}

// SecondFactor is a proof of the second factor: a TOTP code, or a recovery
// code.
type SecondFactor struct {
	Code         string
	RecoveryCode string
}

// VerifySecondFactor checks the user's second factor. A TOTP code is
// accepted once: its time step becomes the last one used, atomically, so
// that neither it nor an earlier code works again. A recovery code is
// used up (recovery_code_used is recorded, and notice queued when not
// nil). A wrong, reused or malformed code is ErrInvalidMFACode, recorded
// as mfa_failed.
func VerifySecondFactor(ctx context.Context, db *gorm.DB, s Sealer, userID uint, proof SecondFactor, notice *Mail) error {
	var ok bool
	var err error
	if proof.RecoveryCode != "" {
		ok, err = useRecoveryCode(ctx, db, s, userID, proof.RecoveryCode, notice)
	} else {
		ok, err = useTOTPCode(ctx, db, s, userID, proof.Code)
	}
	if err != nil {
		return err
	}
	if !ok {
		if err := recordEvent(db.WithContext(ctx), SecurityEvent{UserID: idRef(userID), Type: EventMFAFailed}); err != nil {
			return translate(err)
		}
		return ErrInvalidMFACode
	}
	return nil
}

func useTOTPCode(ctx context.Context, db *gorm.DB, s Sealer, userID uint, code string) (bool, error) {
	cred, secret, err := loadTOTP(ctx, db, s, userID, true)
	if errors.Is(err, ErrMFANotEnabled) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	step, ok := secondfactor.Match(secret, code, nowOf(db), cred.LastStep)
	if !ok {
		return false, nil
	}
	// Of two requests with the same code, one moves the step.
	res := db.WithContext(ctx).Model(&TOTPCredential{}).Where("id = ? AND last_step < ?", cred.ID, step).
		UpdateColumn("last_step", step)
	return res.RowsAffected == 1, translate(res.Error)
}

func useRecoveryCode(ctx context.Context, db *gorm.DB, s Sealer, userID uint, code string, notice *Mail) (bool, error) {
	normal := secondfactor.NormalizeRecoveryCode(code)
	if normal == "" {
		return false, nil
	}
	used := false
	err := commit(ctx, db, func(tx *gorm.DB) (Change, error) {
		res := tx.Model(&RecoveryCode{}).Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, recoveryCodeHash(s, normal)).
			UpdateColumn("used_at", nowOf(tx))
		if res.Error != nil || res.RowsAffected != 1 {
			return Change{}, res.Error
		}
		used = true
		if notice != nil {
			notice.UserID = idRef(userID)
			if err := queueMail(tx, notice); err != nil {
				return Change{}, err
			}
		}
		return Change{}, recordEvent(tx, SecurityEvent{UserID: idRef(userID), Type: EventRecoveryCodeUsed})
	})
	return used, err
}

// loadTOTP reads the user's credential and opens its secret: the
// confirmed one, or the pending one. ErrMFANotEnabled when there is none
// of that kind.
func loadTOTP(ctx context.Context, db *gorm.DB, s Sealer, userID uint, confirmed bool) (*TOTPCredential, string, error) {
	q := db.WithContext(ctx).Where("user_id = ?", userID)
	if confirmed {
		q = q.Where("confirmed_at IS NOT NULL")
	} else {
		q = q.Where("confirmed_at IS NULL")
	}
	var cred TOTPCredential
	if err := q.Take(&cred).Error; err != nil {
		if err = translate(err); errors.Is(err, ErrNotFound) {
			return nil, "", ErrMFANotEnabled
		}
		return nil, "", err
	}
	secret, err := s.Open(totpPurpose(userID), cred.SealedSecret)
	if err != nil {
		return nil, "", err
	}
	return &cred, string(secret), nil
}

// NewMFAChallenge starts the second step of a login whose password check
// was check, for a token named tokenName: it returns the mfa_token (its
// secret, stored only as a hash) and when it expires.
func NewMFAChallenge(ctx context.Context, db *gorm.DB, userID uint, check *PasswordCheck, tokenName string) (string, time.Time, error) {
	secret, err := NewLinkSecret(MFATokenPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	expires := nowOf(db).Add(MFAChallengeTTL)
	ch := MFAChallenge{UserID: userID, KeyHash: HashToken(secret), TokenName: tokenName,
		PasswordDigest: passwordStamp(check.hash), ExpiresAt: expires}
	if err := db.WithContext(ctx).Create(&ch).Error; err != nil {
		return "", time.Time{}, translate(err)
	}
	return secret, expires, nil
}

// FindMFAChallenge returns the live challenge of the mfa_token secret with
// its user: unused, unexpired, with wrong codes to spare, of an active
// user whose password is still the one the login checked. Anything else
// is ErrInvalidMFAToken.
func FindMFAChallenge(ctx context.Context, db *gorm.DB, secret string) (*MFAChallenge, *User, error) {
	if !wellFormedSecret(secret, MFATokenPrefix) {
		return nil, nil, ErrInvalidMFAToken
	}
	var ch MFAChallenge
	err := db.WithContext(ctx).Where("key_hash = ? AND used_at IS NULL AND expires_at > ? AND failures < ?",
		HashToken(secret), nowOf(db), MFAChallengeMaxFailures).Take(&ch).Error
	if err != nil {
		if err = translate(err); errors.Is(err, ErrNotFound) {
			return nil, nil, ErrInvalidMFAToken
		}
		return nil, nil, err
	}
	var u User
	if err := db.WithContext(ctx).Where("id = ?", ch.UserID).Take(&u).Error; err != nil {
		if err = translate(err); errors.Is(err, ErrNotFound) {
			return nil, nil, ErrInvalidMFAToken
		}
		return nil, nil, err
	}
	if !u.IsActive || passwordStamp(u.PasswordHash) != ch.PasswordDigest {
		return nil, nil, ErrInvalidMFAToken
	}
	return &ch, &u, nil
}

// MFAChallengeFailed counts a wrong code against the challenge; the
// MFAChallengeMaxFailures-th kills it.
func MFAChallengeFailed(ctx context.Context, db *gorm.DB, ch *MFAChallenge) error {
	return translate(db.WithContext(ctx).Model(&MFAChallenge{}).Where("id = ?", ch.ID).
		UpdateColumn("failures", gorm.Expr("failures + 1")).Error)
}

// ClaimMFAChallenge uses the challenge up, and returns the password check
// that the login's token is issued under (see IssueToken). A challenge
// used, expired or killed meanwhile is ErrInvalidMFAToken.
func ClaimMFAChallenge(ctx context.Context, db *gorm.DB, ch *MFAChallenge, u *User) (*PasswordCheck, error) {
	res := db.WithContext(ctx).Model(&MFAChallenge{}).
		Where("id = ? AND used_at IS NULL AND expires_at > ? AND failures < ?", ch.ID, nowOf(db), MFAChallengeMaxFailures).
		UpdateColumn("used_at", nowOf(db))
	if res.Error != nil {
		return nil, translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return nil, ErrInvalidMFAToken
	}
	return &PasswordCheck{hash: u.PasswordHash}, nil
}

// PruneMFAChallenges deletes the challenges that expired before before.
func PruneMFAChallenges(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("expires_at < ?", before.UTC()).Delete(&MFAChallenge{})
	return res.RowsAffected, translate(res.Error)
}
