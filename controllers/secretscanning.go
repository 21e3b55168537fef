package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/secretscanning"
)

// maxScanReports is how many tokens one report may carry.
const maxScanReports = 1000

// errBadScanSignature answers a report whose signature does not verify,
// or whose key GitHub's keys do not hold: nothing in it is looked at.
var errBadScanSignature = apierror.New(http.StatusUnauthorized, "invalid_signature",
	"The report's Github-Public-Key-Signature does not verify with the key Github-Public-Key-Identifier names.")

// errScanReport answers a body that is not GitHub's list of reports.
var errScanReport = apierror.New(http.StatusBadRequest, "invalid_json",
	"The request body must be a JSON list of {token, type, url, source}.")

// SecretScanningController is GitHub's secret scanning partner receiver:
// GitHub posts the tokens of ours it finds in public code, and the live
// ones are revoked.
type SecretScanningController struct {
	db      *gorm.DB
	keys    *secretscanning.Keys
	metrics *metrics.Metrics
}

// NewSecretScanningController returns the receiver, checking signatures
// with keys; nil keys (GITHUB_SECRET_SCANNING_KEYS empty) turn it off.
func NewSecretScanningController(db *gorm.DB, keys *secretscanning.Keys, m *metrics.Metrics) *SecretScanningController {
	return &SecretScanningController{db: db, keys: keys, metrics: m}
}

// scanReport is one token GitHub found.
type scanReport struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// scanFeedback is GitHub's feedback format, one per report.
type scanFeedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// Receive checks the signature over the raw body, revokes the live tokens
// reported (reason leak_report, with where each was found) and answers
// with a label for each: true_positive for a token of this service, live
// or not; false_positive for anything else.
func (sc *SecretScanningController) Receive(c *gin.Context) error {
	if sc.keys == nil {
		return apierror.ErrNotFound
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apierror.ErrBodyTooLarge
		}
		return errScanReport
	}
	err = sc.keys.Verify(c.Request.Context(), c.GetHeader("Github-Public-Key-Identifier"),
		c.GetHeader("Github-Public-Key-Signature"), body)
	switch {
	case errors.Is(err, secretscanning.ErrBadSignature), errors.Is(err, secretscanning.ErrUnknownKey):
		return errBadScanSignature
	case err != nil:
		return apierror.ErrUnavailable
	}
	reports, err := decodeScanReports(body)
	if err != nil {
		return err
	}
	feedback := make([]scanFeedback, len(reports))
	var leaks []models.LeakReport
	for i, r := range reports {
		hash := models.HashToken(r.Token)
		feedback[i] = scanFeedback{TokenHash: hash, TokenType: r.Type, Label: metrics.LeakFalsePositive}
		if models.WellFormedToken(r.Token) || models.LegacyTokenShape(r.Token) {
			leaks = append(leaks, models.LeakReport{KeyHash: hash,
				Detail: "GitHub secret scanning: " + r.Source + " " + r.URL})
		}
	}
	known, err := models.RevokeReported(requestContext(c), sc.db, leaks)
	if err != nil {
		return err
	}
	for i := range feedback {
		if known[feedback[i].TokenHash] {
			feedback[i].Label = metrics.LeakTruePositive
		}
		sc.metrics.LeakReport(feedback[i].Label)
	}
	c.JSON(http.StatusOK, feedback)
	return nil
}

// maxScanText is the longest string a report's field may hold, in
// characters.
const maxScanText = 4096

// decodeScanReports reads GitHub's list of reports: one JSON array of
// objects whose fields are text (see badText) of at most maxScanText
// characters, at most maxScanReports of them. A field that breaks a rule
// is named by its key.
func decodeScanReports(body []byte) ([]scanReport, error) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, errScanReport
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var reports []scanReport
	if err := dec.Decode(&reports); err != nil {
		return nil, errScanReport
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errScanReport
	}
	if fields := badListText(body); fields != nil {
		return nil, apierror.Validation(fields)
	}
	if len(reports) > maxScanReports {
		return nil, apierror.Validation(map[string]string{"[]": "at most 1000 reports at once"})
	}
	for _, r := range reports {
		for name, v := range map[string]string{"token": r.Token, "type": r.Type, "url": r.URL, "source": r.Source} {
			if utf8.RuneCountInString(v) > maxScanText {
				return nil, apierror.Validation(map[string]string{name: "must be at most 4096 characters"})
			}
		}
	}
	return reports, nil
}

// badListText is badText for a body that is a list of objects: it names
// each string that is not text by the key it is the value of.
func badListText(body []byte) map[string]string { return badTextAt(body, 2) }
