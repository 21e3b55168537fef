package controllers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/mail"
	"tokenauth/metrics"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/secondfactor"
)

// MFAController lets a user turn the second factor (TOTP with recovery
// codes) on and off. Every change needs a fresh proof of the password
// (the routes declare it).
type MFAController struct {
	db     *gorm.DB
	sealer models.Sealer
	mail   *mail.Composer
	// metrics counts the changes.
	metrics *metrics.Metrics
	// issuer names the service in authenticator apps.
	issuer string
}

// NewMFAController returns an MFAController that seals TOTP secrets and
// hashes recovery codes with sealer (the keyring), writes notices with
// composer, and counts the changes in m.
func NewMFAController(db *gorm.DB, sealer models.Sealer, composer *mail.Composer, m *metrics.Metrics) *MFAController {
	return &MFAController{db: db, sealer: sealer, mail: composer, metrics: m, issuer: mail.Product}
}

type totpEnrolmentResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	QR         string `json:"qr"`
}

// StartTOTP makes a new TOTP secret for the user and answers it, with its
// otpauth:// URI and a QR code, for an authenticator app. Nothing is on
// until ConfirmTOTP gets a code from it; a second start replaces the
// first. An account with a second factor already gets 409.
func (mc *MFAController) StartTOTP(c *gin.Context) error {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	if user.MFAEnabled() {
		return models.ErrMFAEnabled
	}
	e, err := secondfactor.NewEnrolment(mc.issuer, user.Username)
	if err != nil {
		return err
	}
	if err := models.StartTOTPEnrolment(requestContext(c), mc.db, mc.sealer, user.ID, e.Secret); err != nil {
		return err
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusOK, totpEnrolmentResponse{Secret: e.Secret, OTPAuthURL: e.URL, QR: e.QR})
	return nil
}

type totpConfirmRequest struct {
	Code string `json:"code" binding:"required,max=16"`
}

type recoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// ConfirmTOTP turns the second factor on with a code from the new secret,
// and answers the recovery codes, this once. The user's other sessions
// (login tokens) are revoked: they were signed in without it.
func (mc *MFAController) ConfirmTOTP(c *gin.Context) error {
	var req totpConfirmRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	codes, err := secondfactor.NewRecoveryCodes()
	if err != nil {
		return err
	}
	if err := models.ConfirmTOTP(requestContext(c), mc.db, mc.sealer, tok.UserID, tok.ID, req.Code, codes); err != nil {
		return err
	}
	mc.metrics.MFAChange(metrics.MFAEnrolled)
	middlewares.NoStore(c)
	c.JSON(http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
	return nil
}

// DisableTOTP turns the second factor off, and tells the user by mail.
func (mc *MFAController) DisableTOTP(c *gin.Context) error {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	notice, err := mc.mail.MFANotice(user, models.MailMFADisabled, models.Now(mc.db))
	if err != nil {
		return err
	}
	if err := models.DisableMFA(requestContext(c), mc.db, user.ID, models.RevokedByUser, false, notice); err != nil {
		return err
	}
	mc.metrics.MFAChange(metrics.MFADisabled)
	c.Status(http.StatusNoContent)
	return nil
}

// RegenerateRecoveryCodes replaces the user's recovery codes and answers
// the new ones, this once.
func (mc *MFAController) RegenerateRecoveryCodes(c *gin.Context) error {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	codes, err := secondfactor.NewRecoveryCodes()
	if err != nil {
		return err
	}
	if err := models.RegenerateRecoveryCodes(requestContext(c), mc.db, mc.sealer, user.ID, codes); err != nil {
		return err
	}
	mc.metrics.MFAChange(metrics.MFACodesRegenerated)
	middlewares.NoStore(c)
	c.JSON(http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
	return nil
}
