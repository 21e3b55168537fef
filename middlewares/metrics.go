package middlewares

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/metrics"
)

// Measure counts and times every request in m, by method, the route that
// matched and the status.
func Measure(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		m.ObserveRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
	}
}

// CountLogins records the outcome of each login (and of each second step
// of one, POST /api/login/mfa/) in m, read from the answer. Put it first on the login route, before anything that may refuse
// the request (a rate limiter), so that refusals are counted too.
func CountLogins(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		m.Login(loginOutcome(c))
	}
}

func loginOutcome(c *gin.Context) string {
	if len(c.Errors) == 0 {
		switch status := c.Writer.Status(); {
		case status == http.StatusUnauthorized:
			// The one 401 a login answers itself, not as an error.
			return metrics.LoginMFARequired
		case status >= http.StatusBadRequest:
			return metrics.LoginError
		}
		return metrics.LoginSucceeded
	}
	resp, _ := apierror.From(c.Errors.Last().Err)
	switch {
	case resp.Code == apierror.ErrInvalidCreds.Code:
		return metrics.LoginBadPassword
	case resp.Code == apierror.ErrAccountOff.Code:
		return metrics.LoginDisabled
	case resp.Code == apierror.ErrEmailNotVerified.Code:
		return metrics.LoginUnverified
	case resp.Code == apierror.ErrInvalidMFACode.Code:
		return metrics.LoginBadMFACode
	case resp.Code == apierror.ErrInvalidMFAToken.Code:
		return metrics.LoginBadMFAToken
	case resp.Status == http.StatusTooManyRequests:
		return metrics.LoginRateLimited
	case resp.Status < http.StatusInternalServerError:
		return metrics.LoginBadRequest
	}
	return metrics.LoginError
}

// CountReauths records the outcome of each re-authentication (POST
// /api/reauth/) in m, read from the answer. Like CountLogins, it goes
// before the rate limiter.
func CountReauths(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		m.Reauth(reauthOutcome(c))
	}
}

func reauthOutcome(c *gin.Context) string {
	if len(c.Errors) == 0 {
		if c.Writer.Status() >= http.StatusBadRequest {
			return metrics.ReauthError
		}
		return metrics.ReauthSucceeded
	}
	resp, _ := apierror.From(c.Errors.Last().Err)
	switch {
	case resp.Code == "validation_failed" && resp.Fields["password"] != "":
		return metrics.ReauthBadPassword
	case resp.Code == "validation_failed" && (resp.Fields["code"] != "" || resp.Fields["recovery_code"] != ""):
		return metrics.ReauthBadCode
	case resp.Status == http.StatusTooManyRequests:
		return metrics.ReauthRateLimited
	case resp.Status < http.StatusInternalServerError:
		return metrics.ReauthBadRequest
	}
	return metrics.ReauthError
}
