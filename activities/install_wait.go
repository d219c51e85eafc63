package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// defaultInstallWithin is the wait for a request that does not say
// (one scheduled before InstallWithin existed): the default verify timeout.
const defaultInstallWithin = workflows.DefaultVerifyTimeout

// busyOrAway: the device's version probe found it installing, rebooting or
// receiving, or got no usable answer that a retry could not change.
func busyOrAway(v deviceVersion, err error) bool {
	if err != nil {
		return !isPermanent(err)
	}
	return !v.idle()
}

// awaitInstall waits, polling the version as VerifyVersion does, for a
// device that is busy or unreachable after an earlier attempt of this
// push uploaded the image: the device may be installing it and rebooting,
// which can take minutes. Failing the attempt instead would spend the
// retry policy's attempts in seconds and report a device that is being
// updated as failed. It returns the first idle answer, a permanent
// error, or the last transient one once InstallWithin has passed.
func (a *Activities) awaitInstall(ctx context.Context, req workflows.PushRequest, earlier pushProgress) (deviceVersion, error) {
	logger := activity.GetLogger(ctx)
	logger.Info("device busy or unreachable after an earlier upload: waiting for it to finish installing",
		"DeviceID", req.DeviceID)
	within := req.InstallWithin
	if within <= 0 {
		within = defaultInstallWithin
	}
	deadline := time.Now().Add(within)
	wait := firstPoll
	for {
		// The details stay the earlier attempt's: the next attempt must
		// still know that the image may have been installed.
		activity.RecordHeartbeat(ctx, earlier)
		select {
		case <-ctx.Done():
			return deviceVersion{}, ctx.Err()
		case <-a.graceOver().Done():
			// Reported now, so that the server retries at once on another
			// worker, which waits again.
			return deviceVersion{}, transientOfType(ctx, errWorkerShutdown,
				"probe: waiting for the device to finish installing, cut by the worker's shutdown", 0)
		case <-time.After(wait):
		}
		wait = min(maxPoll, wait*3/2)
		v, err := a.getVersion(ctx, "probe", req.Address)
		if !busyOrAway(v, err) || time.Now().After(deadline) {
			return v, err
		}
	}
}
