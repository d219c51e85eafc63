package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// verifyMargin lets VerifyVersion report "still on the old version" itself
// before its start-to-close timeout cuts it off with a less useful error.
const verifyMargin = 30 * time.Second

// DeviceUpdate brings one device to the target version: PushFirmware (which
// first asks the device its version and skips a device already current),
// then VerifyVersion. A device that does not end on the target version
// fails this workflow with the reason, so the Web UI shows it.
func DeviceUpdate(ctx workflow.Context, req DeviceRequest) (DeviceResult, error) {
	result, err := updateDevice(ctx, req)
	reportOutcome(ctx, result, err)
	return result, err
}

// updateDevice is DeviceUpdate but for the report of its outcome, which a
// panic (a failed workflow task, retried) must not make.
func updateDevice(ctx workflow.Context, req DeviceRequest) (DeviceResult, error) {
	timing := req.Policy.Timing()
	retry := &temporal.RetryPolicy{
		InitialInterval:        timing.InitialInterval,
		BackoffCoefficient:     timing.BackoffCoefficient,
		MaximumInterval:        timing.MaximumInterval,
		MaximumAttempts:        int32(timing.MaximumAttempts),
		NonRetryableErrorTypes: PermanentDeviceErrors,
	}

	push, waited, err := pushWhenOnline(ctx, req, timing, retry)
	if err != nil {
		return DeviceResult{}, deviceFailure("push", err)
	}
	if push.AlreadyInstalled {
		return DeviceResult{Outcome: OutcomeAlreadyCurrent, PreviousVersion: push.PreviousVersion, WaitedOffline: waited}, nil
	}

	// The device has the image and is installing it: find out how that ends
	// even if the rollout is being cancelled, so the outcome is the truth.
	// Verification is read-only and idempotent, so it runs as a local
	// activity: no activity task goes through the server, which saves a
	// workflow task and three events per device. A worker that dies while
	// verifying loses its workflow task, and the next worker verifies anew.
	verifyCtx, _ := workflow.NewDisconnectedContext(ctx)
	verifyCtx = workflow.WithLocalActivityOptions(verifyCtx, workflow.LocalActivityOptions{
		StartToCloseTimeout: timing.VerifyTimeout + verifyMargin,
		RetryPolicy:         retry,
	})
	var verified VerifyResult
	err = workflow.ExecuteLocalActivity(verifyCtx, VerifyVersionActivity, VerifyRequest{
		DeviceID:        req.DeviceID,
		Address:         req.Address,
		Version:         req.Firmware.Version,
		PreviousVersion: push.PreviousVersion,
		Within:          timing.VerifyTimeout,
	}).Get(verifyCtx, &verified)
	if err != nil {
		return DeviceResult{}, deviceFailure("verify", err)
	}
	return DeviceResult{Outcome: OutcomeUpdated, PreviousVersion: push.PreviousVersion, WaitedOffline: waited}, nil
}

// deviceFailure turns an activity error into the device's failure: the
// cancellation stays a cancellation, anything else becomes a
// non-retryable error whose message is the operator-facing reason.
func deviceFailure(step string, err error) error {
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return err
	}
	// Activity errors already name their step ("push: device answered ...").
	errType, reason := "DeviceUpdateFailed", step+": "+err.Error()
	var appErr *temporal.ApplicationError
	var timeoutErr *temporal.TimeoutError
	switch {
	case errors.As(err, &timeoutErr):
		errType, reason = "Timeout", fmt.Sprintf("%s: timed out (%s)", step, timeoutName(timeoutErr))
		if last := timeoutErr.Unwrap(); last != nil && errors.As(last, &appErr) {
			reason += ", last error: " + appErr.Message()
		}
	case errors.As(err, &appErr):
		errType, reason = appErr.Type(), appErr.Message()
	}
	return temporal.NewNonRetryableApplicationError(reason, errType, nil)
}

func timeoutName(err *temporal.TimeoutError) string {
	switch err.TimeoutType() {
	case enumspb.TIMEOUT_TYPE_HEARTBEAT:
		return "no heartbeat: the transfer stalled or the worker died"
	case enumspb.TIMEOUT_TYPE_START_TO_CLOSE:
		return "an attempt exceeded its start-to-close timeout"
	}
	return err.TimeoutType().String()
}
