package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// reprobeEvery bounds a wait for a check-in: a device that comes back
// without checking in is found by probing it again.
const reprobeEvery = time.Minute

// pushWhenOnline runs PushFirmware. With device.waitOnline, a device that
// cannot be reached is not failed: the workflow asks the device's presence
// workflow to tell it of the next check-in, and waits for that check-in or
// the next probe, durably, until the deadline. It reports whether the
// device was offline.
func pushWhenOnline(ctx workflow.Context, req DeviceRequest, timing DeviceTiming, retry *temporal.RetryPolicy) (PushResult, bool, error) {
	pushCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timing.PushTimeout,
		HeartbeatTimeout:    timing.HeartbeatTimeout,
		RetryPolicy:         retry,
		// A cancelled push may still have been accepted by the device;
		// wait for the activity to say which before reporting.
		WaitForCancellation: true,
	})
	checkins := workflow.GetSignalChannel(ctx, CheckinSignal)
	var deadline time.Time
	for {
		// A check-in after this push began is news: the device may have come
		// back while the attempts failed.
		began := workflow.Now(ctx)
		var push PushResult
		err := workflow.ExecuteActivity(pushCtx, PushFirmwareActivity, PushRequest{
			RolloutID: req.RolloutID,
			DeviceID:  req.DeviceID,
			Address:   req.Address,
			Firmware:  req.Firmware,

			InstallWithin: timing.VerifyTimeout,
		}).Get(ctx, &push)
		wasOffline := !deadline.IsZero()
		if err == nil || timing.WaitOnline == 0 || !isUnreachable(err) {
			return push, wasOffline, err
		}
		now := workflow.Now(ctx)
		if !wasOffline {
			deadline = now.Add(timing.WaitOnline)
		}
		if !now.Before(deadline) {
			return push, true, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("device offline: unreachable, and no check-in within waitOnline %s (last error: %s)", timing.WaitOnline, reasonOf(err)),
				ErrDeviceOffline, nil)
		}
		watchForCheckin(ctx, req.DeviceID, began)
		if err := awaitCheckin(ctx, checkins, min(deadline.Sub(now), reprobeEvery)); err != nil {
			return push, true, err
		}
	}
}

func isUnreachable(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == ErrDeviceUnreachable
}

// watchForCheckin registers with the device's presence workflow, by
// signal-with-start so that the registration, like the check-in, cannot be
// lost. A check-in after since wakes this workflow. It is a local
// activity: one RPC, no activity task. If it fails, the probes go on.
func watchForCheckin(ctx workflow.Context, deviceID string, since time.Time) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	_ = workflow.ExecuteLocalActivity(ctx, WatchDeviceActivity, Watch{
		DeviceID: deviceID,
		Watcher:  workflow.GetInfo(ctx).WorkflowExecution.ID,
		Since:    since,
	}).Get(ctx, nil)
}

// awaitCheckin returns at the device's check-in or after wait; the error
// is the cancellation of the workflow.
func awaitCheckin(ctx workflow.Context, checkins workflow.ReceiveChannel, wait time.Duration) error {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
	sel.AddReceive(checkins, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		for c.ReceiveAsync(nil) { // several check-ins wake once
		}
	})
	sel.Select(ctx)
	return ctx.Err()
}
