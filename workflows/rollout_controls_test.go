package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// These tests use slowPush (one retry interval of simulated time per
// device) with a window of 3 and 20 devices, so at t = k+0.5s devices
// 3k+1..3k+3 are running and 3k have finished.

func controlsFixture(t *testing.T, id string) (*fleet, Spec, *testsuite.TestWorkflowEnvironment) {
	f := newFleet(deviceIDs(20)...)
	f.defPush = slowPush
	spec := validSpec(id)
	spec.MaxConcurrent = 3
	return f, spec, newRolloutEnv(t, f, spec)
}

func at(env *testsuite.TestWorkflowEnvironment, d time.Duration, fn func()) {
	env.RegisterDelayedCallback(fn, d)
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func TestRolloutPauseAndResume(t *testing.T) {
	f, spec, env := controlsFixture(t, "fw-pause")

	var resumeEarly, pause, pauseAgain, resume, resumeAgain *updateResult
	var paused1, paused2, resumed Report
	at(env, sec(0.2), func() { resumeEarly = sendUpdate(env, ResumeUpdate) })
	at(env, sec(0.5), func() { pause = sendUpdate(env, PauseUpdate) })
	at(env, sec(0.7), func() { pauseAgain = sendUpdate(env, PauseUpdate) })
	at(env, sec(1.5), func() { paused1 = queryProgress(t, env) })
	at(env, sec(5.5), func() { paused2 = queryProgress(t, env) })
	at(env, sec(6), func() { resume = sendUpdate(env, ResumeUpdate) })
	at(env, sec(6.2), func() { resumeAgain = sendUpdate(env, ResumeUpdate) })
	at(env, sec(6.5), func() { resumed = queryProgress(t, env) })

	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	// validators
	require.NotNil(t, resumeEarly)
	assert.False(t, resumeEarly.accepted)
	assert.ErrorContains(t, resumeEarly.rejected, "neither paused nor halted")
	require.NotNil(t, pauseAgain)
	assert.False(t, pauseAgain.accepted)
	assert.ErrorContains(t, pauseAgain.rejected, "already paused")
	require.NotNil(t, resumeAgain)
	assert.ErrorContains(t, resumeAgain.rejected, "neither paused nor halted")

	// pause: acknowledged with the state at that moment
	require.True(t, pause.accepted)
	require.True(t, pause.done)
	require.NoError(t, pause.err)
	assert.Equal(t, StatusPaused, pause.report.Status)
	assert.Equal(t, 3, pause.report.Started)
	assert.Equal(t, 3, pause.report.Running)

	// while paused the running devices finish and no new one starts
	for _, p := range []Report{paused1, paused2} {
		checkInvariants(t, p, spec)
		assert.Equal(t, StatusPaused, p.Status)
		assert.Equal(t, 3, p.Started)
		assert.Equal(t, 0, p.Running)
		assert.Equal(t, Counts{Succeeded: 3}, p.Counts)
	}

	// resume: the window fills again
	require.True(t, resume.accepted)
	require.NoError(t, resume.err)
	assert.Equal(t, StatusRunning, resume.report.Status)
	assert.Equal(t, StatusRunning, resumed.Status)
	assert.Equal(t, 6, resumed.Started)
	assert.Equal(t, 3, resumed.Running)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 20}, rep.Counts)
	assert.Equal(t, 20, rep.Started)
	for _, id := range deviceIDs(20) {
		assert.Equal(t, 2, f.pushCount(id))
		assert.Equal(t, 1, f.verifyCount(id))
	}
	// 3 devices in t=0..1, paused until t=6, then 17 devices in 6 intervals.
	assert.Equal(t, sec(6+6), rep.EndedAt.Sub(rep.StartedAt))
}

func TestRolloutGracefulCancel(t *testing.T) {
	f, spec, env := controlsFixture(t, "fw-cancel")

	var cancel, cancelAgain, pauseWhileCancelling, resumeWhileCancelling *updateResult
	var cancelling Report
	at(env, sec(1.5), func() { cancel = sendUpdate(env, CancelUpdate, CancelRequest{}) })
	at(env, sec(1.7), func() {
		cancelling = queryProgress(t, env)
		cancelAgain = sendUpdate(env, CancelUpdate, CancelRequest{})
		pauseWhileCancelling = sendUpdate(env, PauseUpdate)
		resumeWhileCancelling = sendUpdate(env, ResumeUpdate)
	})

	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.True(t, cancel.accepted)
	require.NoError(t, cancel.err)
	assert.Equal(t, StatusCancelling, cancel.report.Status)
	assert.Equal(t, 6, cancel.report.Started)
	assert.Equal(t, 3, cancel.report.Running)

	assert.Equal(t, StatusCancelling, cancelling.Status)
	assert.Equal(t, 6, cancelling.Started)
	assert.Equal(t, 3, cancelling.Running)
	assert.ErrorContains(t, cancelAgain.rejected, "already cancelling")
	assert.ErrorContains(t, pauseWhileCancelling.rejected, "being cancelled")
	assert.ErrorContains(t, resumeWhileCancelling.rejected, "being cancelled")

	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, "cancelled by the operator", rep.Reason)
	assert.Equal(t, 6, rep.Started)
	assert.Equal(t, Counts{Succeeded: 6, Cancelled: 14}, rep.Counts, "running devices finish; the rest are cancelled")
	assert.Equal(t, sec(2), rep.EndedAt.Sub(rep.StartedAt), "ends when the running devices finish")
	assert.Len(t, f.pushedDevices(), 6)
	for _, id := range f.pushedDevices() {
		assert.Equal(t, 1, f.verifyCount(id), "%s finished normally", id)
	}
	checkInvariants(t, rep, spec)
}

func TestRolloutCancelWhilePaused(t *testing.T) {
	f, spec, env := controlsFixture(t, "fw-cancel-paused")
	var cancel *updateResult
	at(env, sec(0.5), func() { sendUpdate(env, PauseUpdate) })
	at(env, sec(3), func() { cancel = sendUpdate(env, CancelUpdate, CancelRequest{}) })

	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.True(t, cancel.accepted)
	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, Counts{Succeeded: 3, Cancelled: 17}, rep.Counts)
	assert.Equal(t, sec(3), rep.EndedAt.Sub(rep.StartedAt), "a paused rollout with nothing running ends at once")
	assert.Len(t, f.pushedDevices(), 3)
}

// blockingSecondPush fails the first attempt transiently (so that the
// retry starts at t=1s of simulated time) and then blocks until cancelled.
func blockingSecondPush(f *fleet) pushFn {
	return func(ctx context.Context, attempt int) (PushResult, error) {
		if attempt == 1 {
			return PushResult{}, unavailable()
		}
		return f.blockPush(ctx, attempt)
	}
}

func forceCancelFixture(t *testing.T, id string) (*fleet, Spec, *testsuite.TestWorkflowEnvironment) {
	f := newFleet(deviceIDs(20)...)
	f.defPush = blockingSecondPush(f)
	spec := validSpec(id)
	spec.MaxConcurrent = 3
	// Heartbeats are throttled to 80% of the heartbeat timeout; a short
	// one lets the blocked pushes learn of the cancellation quickly.
	spec.Device.HeartbeatTimeout = "200ms"
	return f, spec, newRolloutEnv(t, f, spec)
}

func assertForceCancelled(t *testing.T, f *fleet, spec Spec, rep Report) {
	t.Helper()
	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, 3, rep.Started)
	assert.Equal(t, 0, rep.Running)
	assert.Equal(t, Counts{Cancelled: 20}, rep.Counts, "3 in-flight pushes cancelled + 17 never started")
	assert.Empty(t, rep.Failures)
	assert.Len(t, f.pushedDevices(), 3)
	for _, id := range f.pushedDevices() {
		assert.Equal(t, 0, f.verifyCount(id))
	}
	// The in-flight pushes saw their context cancelled and returned.
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.pushCancelled == 3
	}, 5*time.Second, 10*time.Millisecond, "in-flight pushes were not cancelled")
	checkInvariants(t, rep, spec)
}

func TestRolloutForceCancel(t *testing.T) {
	f, spec, env := forceCancelFixture(t, "fw-force")
	var cancel, force *updateResult
	at(env, sec(1.02), func() { cancel = sendUpdate(env, CancelUpdate, CancelRequest{}) })
	at(env, sec(1.05), func() {
		force = sendUpdate(env, CancelUpdate, CancelRequest{Force: true})
	})

	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.True(t, cancel.accepted, "graceful cancel first")
	require.True(t, force.accepted, "a forced cancel is accepted while cancelling gracefully")
	require.NoError(t, force.err)
	assert.Equal(t, StatusCancelling, force.report.Status)
	assertForceCancelled(t, f, spec, rep)
}

func TestRolloutForceCancelDirect(t *testing.T) {
	f, spec, env := forceCancelFixture(t, "fw-force-direct")
	at(env, sec(1.05), func() { sendUpdate(env, CancelUpdate, CancelRequest{Force: true}) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	assertForceCancelled(t, f, spec, rolloutResult(t, env))
}

// A Temporal cancellation (Web UI, `temporal workflow cancel`) is a forced
// cancel, and the rollout still answers with its report.
func TestRolloutTemporalCancellation(t *testing.T) {
	f, spec, env := forceCancelFixture(t, "fw-temporal-cancel")
	at(env, sec(1.05), func() { env.CancelWorkflow() })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	assertForceCancelled(t, f, spec, rolloutResult(t, env))
}

// A device whose push was accepted is installing: a forced cancel still
// finds out how that ends instead of abandoning it.
func TestRolloutForceCancelStillVerifiesAcceptedPushes(t *testing.T) {
	f := newFleet(deviceIDs(10)...)
	spec := validSpec("fw-force-verify")
	spec.MaxConcurrent = 3
	// Every device's verification takes one retry interval (the device is
	// rebooting); at t=0.5s the first three are all being verified.
	f.defPush = pushOK
	f.verifies = map[string]verifyFn{}
	for _, id := range deviceIDs(10) {
		f.verifies[id] = func(_ context.Context, req VerifyRequest, attempt int) (VerifyResult, error) {
			if attempt == 1 {
				return VerifyResult{}, unavailable()
			}
			return VerifyResult{Version: req.Version}, nil
		}
	}
	env := newRolloutEnv(t, f, spec)
	at(env, sec(0.5), func() { sendUpdate(env, CancelUpdate, CancelRequest{Force: true}) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, Counts{Succeeded: 3, Cancelled: 7}, rep.Counts)
	for _, id := range f.pushedDevices() {
		assert.Equal(t, 2, f.verifyCount(id), "%s verified to the end", id)
	}
}

// The progress query answers sensibly at every point of a rollout with
// failures, retries and already-current devices.
func TestRolloutProgressQueryThroughout(t *testing.T) {
	ids := deviceIDs(25)
	f := newFleet(ids...)
	f.defPush = slowPush
	f.pushes[ids[3]] = pushAlways(unavailable()) // 5 attempts: 1+2+4+8 = 15s
	f.pushes[ids[7]] = failFirst(1, refusedErr())
	f.pushes[ids[9]] = func(ctx context.Context, attempt int) (PushResult, error) {
		if attempt == 1 {
			return PushResult{}, unavailable()
		}
		return PushResult{AlreadyInstalled: true}, nil
	}
	spec := validSpec("fw-progress")
	spec.MaxConcurrent = 4

	env := newRolloutEnv(t, f, spec)
	var samples []Report
	for i := 0; i < 40; i++ {
		at(env, sec(float64(i)+0.25), func() { samples = append(samples, queryProgress(t, env)) })
	}
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.NotEmpty(t, samples)
	prev := Report{}
	for _, s := range samples {
		checkInvariants(t, s, spec)
		assert.Equal(t, 25, s.Selected)
		assert.Equal(t, StatusRunning, s.Status)
		assert.GreaterOrEqual(t, s.Started, prev.Started, "started never goes back")
		assert.GreaterOrEqual(t, s.Counts.Done(), prev.Counts.Done(), "done never goes back")
		assert.Equal(t, rep.StartedAt, s.StartedAt)
		assert.True(t, s.EndedAt.IsZero())
		prev = s
	}
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, Counts{Succeeded: 22, AlreadyCurrent: 1, Failed: 2}, rep.Counts)
	assert.Equal(t, 5, f.pushCount(ids[3]))
	assert.Equal(t, 1, f.pushCount(ids[7]))
	checkInvariants(t, rep, spec)
}

func refusedErr() error {
	return errDeviceRefused("push: device refused the upload: 401 Unauthorized")
}
