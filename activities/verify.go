package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Polling cadence of VerifyVersion while the device installs and reboots.
const (
	firstPoll = 200 * time.Millisecond
	maxPoll   = 2 * time.Second
)

// VerifyVersion polls GET {address}/version until the device reports the
// target version. While it installs and reboots the device answers 503 or
// not at all: that is waited out. A device that comes back on another
// version, or on its previous one after going down, failed to install:
// a permanent failure, with the version it reported.
func (a *Activities) VerifyVersion(ctx context.Context, req workflows.VerifyRequest) (workflows.VerifyResult, error) {
	began := time.Now()
	result, err := a.verifyVersion(ctx, req)
	observeVerify(ctx, began, err)
	return result, err
}

// verifyVersion is VerifyVersion but for the metrics of the attempt.
func (a *Activities) verifyVersion(ctx context.Context, req workflows.VerifyRequest) (workflows.VerifyResult, error) {
	deadline := time.Now().Add(req.Within)
	wait := firstPoll
	sawRestart := false
	var lastProblem string
	for {
		v, err := a.getVersion(ctx, "verify", req.Address)
		switch {
		case err == nil && v.Version == req.Version && v.idle():
			return workflows.VerifyResult{Version: v.Version}, nil
		case err == nil && !v.idle():
			sawRestart = true
			lastProblem = "device state " + v.State
		case err == nil && v.Version != req.PreviousVersion:
			return workflows.VerifyResult{}, permanent(workflows.ErrWrongVersion,
				fmt.Sprintf("verify: device came back on version %s, expected %s", v.Version, req.Version))
		case err == nil && sawRestart:
			return workflows.VerifyResult{}, permanent(workflows.ErrWrongVersion,
				fmt.Sprintf("verify: device restarted on its previous version %s, expected %s (install rolled back)", v.Version, req.Version))
		case err == nil:
			lastProblem = "device still reports its previous version " + v.Version
		case isPermanent(err) || ctx.Err() != nil:
			return workflows.VerifyResult{}, err
		default:
			sawRestart = true
			lastProblem = err.Error()
		}
		activity.RecordHeartbeat(ctx, lastProblem)
		if time.Now().After(deadline) {
			return workflows.VerifyResult{}, permanent(workflows.ErrWrongVersion,
				fmt.Sprintf("verify: device did not report version %s within %s (last: %s)", req.Version, req.Within, lastProblem))
		}
		select {
		case <-ctx.Done():
			return workflows.VerifyResult{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(maxPoll, wait*3/2)
	}
}

func isPermanent(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}
