package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// maxAnswerBytes bounds what we read of any device answer.
const maxAnswerBytes = 64 << 10

// decodeAnswer decodes a device's JSON answer of at most maxAnswerBytes.
func decodeAnswer(body io.Reader, v any) error {
	return json.NewDecoder(capped(body, maxAnswerBytes, "the answer")).Decode(v)
}

// errDeviceUnavailable is the type of transient device errors; it is not
// in the non-retryable list, so Temporal retries it with backoff.
const errDeviceUnavailable = "DeviceUnavailable"

// answerError classifies a device's HTTP answer per the device protocol:
// 408, 429 and 5xx are transient (429 honours Retry-After), 422 is a
// refused image, redirects and other 4xx are permanent refusals.
func answerError(ctx context.Context, step string, resp *http.Response) error {
	what := fmt.Sprintf("%s: device answered %s%s", step, resp.Status, answerDetail(resp))
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests:
		return transient(ctx, what, retryAfter(resp.Header.Get("Retry-After")))
	case code == http.StatusRequestTimeout || code >= 500:
		return transient(ctx, what, 0)
	case code == http.StatusUnprocessableEntity:
		return permanent(workflows.ErrChecksumMismatch, what+" (image refused)")
	case code >= 300 && code < 400:
		where := "without a Location"
		if loc := excerpt(resp.Header.Get("Location")); loc != "" {
			where = "to " + loc
		}
		return permanent(workflows.ErrBadDeviceAnswer, what+" redirecting "+where+" (redirects are not followed)")
	default:
		return permanent(workflows.ErrDeviceRefused, what)
	}
}

// answerDetail is a short, single-line excerpt of the answer's body.
func answerDetail(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if text := excerpt(string(body)); text != "" {
		return ": " + text
	}
	return ""
}

// Bounds of what a device's answer can put in a failure message.
const (
	maxExcerptBytes = 200 // of one thing it said (its body, a Location)
	maxReasonBytes  = 640 // of the whole message
)

// excerpt is what a device said, made fit for a failure message.
func excerpt(s string) string { return oneLineUTF8(s, maxExcerptBytes) }

// oneLineUTF8 makes s one line of printable UTF-8 of at most limit bytes
// (plus "..." when cut). Failure messages go into workflow histories as
// protobuf strings, which must be UTF-8, and into operators' terminals,
// where a device's control characters have no business.
func oneLineUTF8(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// retryAfter parses Retry-After in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		// Compared in seconds: a huge count overflows time.Duration.
		return time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(maxRetryAfter, max(0, time.Until(at)))
	}
	return 0
}

// maxRetryAfter caps a device's Retry-After, so that no answer parks its
// update for longer (the retry policy's attempts still bound the retries).
const maxRetryAfter = time.Hour

// transient is retried by the activity's retry policy. The message names
// the attempt so the final failure says how hard we tried.
func transient(ctx context.Context, what string, delay time.Duration) error {
	return transientOfType(ctx, errDeviceUnavailable, what, delay)
}

func transientOfType(ctx context.Context, errType, what string, delay time.Duration) error {
	msg := fmt.Sprintf("%s (attempt %d)", oneLineUTF8(what, maxReasonBytes), activity.GetInfo(ctx).Attempt)
	return temporal.NewApplicationErrorWithOptions(msg, errType, temporal.ApplicationErrorOptions{
		NextRetryDelay: delay,
	})
}

func permanent(errType, what string) error {
	return temporal.NewNonRetryableApplicationError(oneLineUTF8(what, maxReasonBytes), errType, nil)
}

// networkError is a transient failure to talk to the device at all,
// unless our own context ended (cancellation is not a device problem).
// Only a stalled transfer, which the push detects itself, is reported as
// a device failure; any other end of the context (the server cancelling
// the activity with a CanceledError cause, a pause, the deadline) returns
// ctx.Err() so that the SDK reports the cancellation as such.
func networkError(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errTransferStalled) {
			return transient(ctx, step+": "+cause.Error(), 0)
		}
		return ctx.Err()
	}
	if why := tlsFailure("the device", err); why != "" {
		return permanent(workflows.ErrDeviceTLS, step+": "+why)
	}
	// Its own type, so that a rollout with device.waitOnline can tell an
	// offline device from one that answers badly.
	return transientOfType(ctx, workflows.ErrDeviceUnreachable, step+": device unreachable: "+err.Error(), 0)
}

// deviceVersion is the body of GET {address}/version.
type deviceVersion struct {
	Version string `json:"version"`
	State   string `json:"state"`
}

// idle: the device is not installing or rebooting (an absent state counts
// as idle, for devices that do not report one).
func (v deviceVersion) idle() bool { return v.State == "" || v.State == "idle" }

// getVersion asks the device what it runs. Errors are classified like
// any device answer.
func (a *Activities) getVersion(ctx context.Context, step, address string) (deviceVersion, error) {
	reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, address+"/version", nil)
	if err != nil {
		return deviceVersion{}, permanent(workflows.ErrBadDeviceAnswer, step+": bad device address: "+err.Error())
	}
	a.authorize(req)
	resp, err := a.Client.Do(req)
	if err != nil {
		return deviceVersion{}, networkError(ctx, step, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return deviceVersion{}, answerError(ctx, step, resp)
	}
	var v deviceVersion
	if err := decodeAnswer(resp.Body, &v); err != nil || v.Version == "" {
		return deviceVersion{}, permanent(workflows.ErrBadDeviceAnswer,
			step+`: device answered /version without a JSON {"version": ...}`+tooLargeDetail(err))
	}
	return v, nil
}

func (a *Activities) authorize(req *http.Request) {
	if a.DeviceToken != "" {
		req.Header.Set("Authorization", "Bearer "+a.DeviceToken)
	}
}

// drainAndClose lets the connection go back to the pool.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxAnswerBytes))
	_ = body.Close()
}
