package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

func deviceRequest(policy DevicePolicy) DeviceRequest {
	spec := validSpec("fw-dev")
	return DeviceRequest{
		RolloutID: spec.ID,
		DeviceID:  "pos-1",
		Address:   "http://devices.test/pos-1",
		Firmware:  spec.Firmware,
		Policy:    policy,
	}
}

// newDeviceEnv runs DeviceUpdate on its own, with the fleet's activities.
// The run timeout matters: the test environment caps heartbeat timeouts
// at it (see childRunTimeout).
func newDeviceEnv(t *testing.T, f *fleet) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newTestEnv()
	env.SetTestTimeout(30 * time.Second)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{
		ID: "fw-dev/pos-1", TaskQueue: TaskQueue, WorkflowRunTimeout: 24 * time.Hour,
	})
	Register(env)
	f.register(env)
	return env
}

func runDevice(t *testing.T, f *fleet, req DeviceRequest) (*testsuite.TestWorkflowEnvironment, DeviceResult, error) {
	t.Helper()
	env := newDeviceEnv(t, f)
	env.ExecuteWorkflow(DeviceUpdate, req)
	require.True(t, env.IsWorkflowCompleted())
	var res DeviceResult
	err := env.GetWorkflowError()
	if err == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return env, res, err
}

func TestDeviceUpdateUpdated(t *testing.T) {
	f := newFleet("pos-1")
	var got PushRequest
	var mu sync.Mutex
	f.pushes["pos-1"] = func(ctx context.Context, attempt int) (PushResult, error) {
		return PushResult{PreviousVersion: "2.3.1", BytesSent: 1024}, nil
	}
	env := newDeviceEnv(t, f)
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name == PushFirmwareActivity {
			mu.Lock()
			defer mu.Unlock()
			require.NoError(t, args.Get(&got))
		}
	})
	req := deviceRequest(DevicePolicy{})
	env.ExecuteWorkflow(DeviceUpdate, req)
	require.NoError(t, env.GetWorkflowError())
	var res DeviceResult
	require.NoError(t, env.GetWorkflowResult(&res))

	assert.Equal(t, DeviceResult{Outcome: OutcomeUpdated, PreviousVersion: "2.3.1"}, res)
	mu.Lock()
	assert.Equal(t, PushRequest{RolloutID: req.RolloutID, DeviceID: "pos-1", Address: req.Address, Firmware: req.Firmware,
		InstallWithin: DefaultVerifyTimeout}, got, "a retry waits for an install as long as verify would")
	mu.Unlock()
	assert.Equal(t, 1, f.pushCount("pos-1"))
	assert.Equal(t, 1, f.verifyCount("pos-1"))
}

func TestDeviceUpdateAlreadyCurrent(t *testing.T) {
	f := newFleet("pos-1")
	f.pushes["pos-1"] = func(context.Context, int) (PushResult, error) {
		return PushResult{AlreadyInstalled: true, PreviousVersion: "2.4.0"}, nil
	}
	_, res, err := runDevice(t, f, deviceRequest(DevicePolicy{}))
	require.NoError(t, err)
	assert.Equal(t, DeviceResult{Outcome: OutcomeAlreadyCurrent, PreviousVersion: "2.4.0"}, res)
	assert.Equal(t, 0, f.verifyCount("pos-1"))
}

// The retry policy comes from the spec: attempts, first interval, growth
// and cap, checked on the simulated clock.
func TestDeviceUpdateRetryPolicyFromSpec(t *testing.T) {
	f := newFleet("pos-1")
	env := newDeviceEnv(t, f)
	var mu sync.Mutex
	var times []time.Time
	f.pushes["pos-1"] = func(context.Context, int) (PushResult, error) {
		mu.Lock()
		times = append(times, env.Now())
		mu.Unlock()
		return PushResult{}, unavailable()
	}
	req := deviceRequest(DevicePolicy{Retry: RetrySpec{
		InitialInterval: "10s", BackoffCoefficient: 3, MaximumInterval: "40s", MaximumAttempts: 4,
	}})
	env.ExecuteWorkflow(DeviceUpdate, req)
	require.True(t, env.IsWorkflowCompleted())

	appErr := requireAppError(t, env.GetWorkflowError(), "DeviceUnavailable")
	assert.True(t, appErr.NonRetryable(), "the device's failure is final")
	assert.Equal(t, "push: device answered 503 Service Unavailable", appErr.Message())
	assert.Equal(t, 4, f.pushCount("pos-1"))
	require.Len(t, times, 4)
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	assert.Equal(t, []time.Duration{10 * time.Second, 30 * time.Second, 40 * time.Second}, gaps)
}

func TestDeviceUpdateMaximumAttempts(t *testing.T) {
	for _, n := range []int{1, 3} {
		f := newFleet("pos-1")
		f.pushes["pos-1"] = pushAlways(unavailable())
		_, _, err := runDevice(t, f, deviceRequest(DevicePolicy{Retry: RetrySpec{MaximumAttempts: n}}))
		requireAppError(t, err, "DeviceUnavailable")
		assert.Equal(t, n, f.pushCount("pos-1"), "maximumAttempts %d", n)
	}
}

func TestDeviceUpdateVerifyIsRetried(t *testing.T) {
	f := newFleet("pos-1")
	f.verifies["pos-1"] = func(_ context.Context, req VerifyRequest, attempt int) (VerifyResult, error) {
		if attempt <= 2 {
			return VerifyResult{}, temporal.NewApplicationError("verify: device not answering", "DeviceUnavailable")
		}
		return VerifyResult{Version: req.Version}, nil
	}
	_, res, err := runDevice(t, f, deviceRequest(DevicePolicy{}))
	require.NoError(t, err)
	assert.Equal(t, OutcomeUpdated, res.Outcome)
	assert.Equal(t, 3, f.verifyCount("pos-1"))
	assert.Equal(t, 1, f.pushCount("pos-1"), "a failed verification does not push again")
}

// Every permanent type is non-retryable through the retry policy, even
// when the activity returns it as a retryable error.
func TestDeviceUpdatePermanentErrorTypes(t *testing.T) {
	for _, typ := range PermanentDeviceErrors {
		t.Run("push "+typ, func(t *testing.T) {
			f := newFleet("pos-1")
			f.pushes["pos-1"] = pushAlways(temporal.NewApplicationError("push: refused ("+typ+")", typ))
			_, _, err := runDevice(t, f, deviceRequest(DevicePolicy{}))
			appErr := requireAppError(t, err, typ)
			assert.True(t, appErr.NonRetryable())
			assert.Equal(t, "push: refused ("+typ+")", appErr.Message())
			assert.Equal(t, 1, f.pushCount("pos-1"))
			assert.Equal(t, 0, f.verifyCount("pos-1"))
		})
		t.Run("verify "+typ, func(t *testing.T) {
			f := newFleet("pos-1")
			f.verifies["pos-1"] = func(context.Context, VerifyRequest, int) (VerifyResult, error) {
				return VerifyResult{}, temporal.NewApplicationError("verify: refused ("+typ+")", typ)
			}
			_, _, err := runDevice(t, f, deviceRequest(DevicePolicy{}))
			requireAppError(t, err, typ)
			assert.Equal(t, 1, f.verifyCount("pos-1"))
		})
	}
}

func TestDeviceUpdateTimeoutsFromSpec(t *testing.T) {
	cases := []struct {
		name                              string
		policy                            DevicePolicy
		push, heartbeat, verify, verifyIn time.Duration
	}{
		{"defaults", DevicePolicy{}, DefaultPushTimeout, DefaultHeartbeatTimeout, DefaultVerifyTimeout + verifyMargin, DefaultVerifyTimeout},
		{"from spec", DevicePolicy{PushTimeout: "3m", VerifyTimeout: "90s", HeartbeatTimeout: "15s"},
			3 * time.Minute, 15 * time.Second, 2 * time.Minute, 90 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("pos-1")
			_, _, err := runDevice(t, f, deviceRequest(tc.policy))
			require.NoError(t, err)
			require.Len(t, f.pushInfo, 1)
			require.Len(t, f.verifyInfo, 1)
			assert.Equal(t, tc.push, f.pushInfo[0].StartToCloseTimeout)
			assert.Equal(t, tc.heartbeat, f.pushInfo[0].HeartbeatTimeout)
			assert.Equal(t, tc.verify, f.verifyInfo[0].StartToCloseTimeout)
			assert.True(t, f.verifyInfo[0].IsLocalActivity, "verify runs as a local activity")
			assert.Equal(t, tc.verifyIn, f.verifyReqs[0].Within)
		})
	}
}

func TestDeviceUpdateHeartbeatTimeoutReasonNamesTheStall(t *testing.T) {
	f := newFleet("pos-1")
	f.pushes["pos-1"] = func(ctx context.Context, _ int) (PushResult, error) {
		// A transfer that stalls: no heartbeat for longer than the timeout.
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
		return PushResult{}, nil
	}
	_, _, err := runDevice(t, f, deviceRequest(DevicePolicy{HeartbeatTimeout: "50ms", Retry: RetrySpec{MaximumAttempts: 1}}))
	appErr := requireAppError(t, err, "Timeout")
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), "push: timed out")
	assert.Contains(t, appErr.Message(), "no heartbeat")
	assert.Contains(t, appErr.Message(), "stalled")
	assert.Equal(t, 0, f.verifyCount("pos-1"))
}

func TestDeviceUpdateStartToCloseTimeoutReason(t *testing.T) {
	f := newFleet("pos-1")
	f.pushes["pos-1"] = func(ctx context.Context, _ int) (PushResult, error) {
		<-ctx.Done()
		return PushResult{}, ctx.Err()
	}
	_, _, err := runDevice(t, f, deviceRequest(DevicePolicy{PushTimeout: "100ms", Retry: RetrySpec{MaximumAttempts: 1}}))
	appErr := requireAppError(t, err, "Timeout")
	assert.Contains(t, appErr.Message(), "push: timed out (an attempt exceeded its start-to-close timeout)")
}

// Cancelling a device while its push is pending ends it as cancelled,
// without verifying.
func TestDeviceUpdateCancelledDuringPush(t *testing.T) {
	f := newFleet("pos-1")
	f.pushes["pos-1"] = slowPush
	env := newDeviceEnv(t, f)
	env.RegisterDelayedCallback(env.CancelWorkflow, 500*time.Millisecond)
	env.ExecuteWorkflow(DeviceUpdate, deviceRequest(DevicePolicy{}))
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.True(t, temporal.IsCanceledError(err), "got %v", err)
	assert.Equal(t, 0, f.verifyCount("pos-1"))
}

// Once the device took the image, a cancellation does not stop the
// verification: the outcome is the truth.
func TestDeviceUpdateCancelledDuringVerify(t *testing.T) {
	f := newFleet("pos-1")
	f.verifies["pos-1"] = func(_ context.Context, req VerifyRequest, attempt int) (VerifyResult, error) {
		if attempt == 1 {
			return VerifyResult{}, unavailable()
		}
		return VerifyResult{Version: req.Version}, nil
	}
	env := newDeviceEnv(t, f)
	env.RegisterDelayedCallback(env.CancelWorkflow, 500*time.Millisecond)
	env.ExecuteWorkflow(DeviceUpdate, deviceRequest(DevicePolicy{}))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DeviceResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, OutcomeUpdated, res.Outcome)
	assert.Equal(t, 2, f.verifyCount("pos-1"))
}

func TestDeviceFailure(t *testing.T) {
	canceled := temporal.NewCanceledError()
	assert.Same(t, canceled, deviceFailure("push", canceled), "a cancellation stays a cancellation")

	err := deviceFailure("push", temporal.NewApplicationError("push: 403", ErrDeviceRefused))
	appErr := requireAppError(t, err, ErrDeviceRefused)
	assert.True(t, appErr.NonRetryable())
	assert.Equal(t, "push: 403", appErr.Message())

	err = deviceFailure("verify", temporal.NewHeartbeatTimeoutError())
	appErr = requireAppError(t, err, "Timeout")
	assert.Equal(t, "verify: timed out (no heartbeat: the transfer stalled or the worker died)", appErr.Message())

	err = deviceFailure("push", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE,
		temporal.NewApplicationError("push: device answered 503", "DeviceUnavailable")))
	appErr = requireAppError(t, err, "Timeout")
	assert.Equal(t, "push: timed out (an attempt exceeded its start-to-close timeout), last error: push: device answered 503", appErr.Message())

	err = deviceFailure("push", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil))
	appErr = requireAppError(t, err, "Timeout")
	assert.Equal(t, "push: timed out (ScheduleToClose)", appErr.Message())

	err = deviceFailure("push", errors.New("connection reset"))
	appErr = requireAppError(t, err, "DeviceUpdateFailed")
	assert.Equal(t, "push: connection reset", appErr.Message())
}

func TestReasonOf(t *testing.T) {
	assert.Equal(t, "already updated by an earlier run of this rollout ID",
		reasonOf(&temporal.ChildWorkflowExecutionAlreadyStartedError{}))
	assert.Equal(t, "push: 403", reasonOf(temporal.NewApplicationError("push: 403", ErrDeviceRefused)))
	assert.Equal(t, "timed out (Heartbeat)", reasonOf(temporal.NewHeartbeatTimeoutError()))
	assert.Equal(t, "boom", reasonOf(errors.New("boom")))
}

func TestDeviceChildOptions(t *testing.T) {
	spec := validSpec("fw-2.4.0")
	o := deviceChildOptions(spec, "pos-nyc-001")
	assert.Equal(t, "fw-2.4.0/pos-nyc-001", o.WorkflowID)
	assert.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, o.WorkflowIDReusePolicy, "a device is never updated twice by one rollout")
	assert.Equal(t, enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL, o.ParentClosePolicy)
	assert.True(t, o.WaitForCancellation)
	sa := o.TypedSearchAttributes
	for key, want := range map[string]string{"RolloutID": "fw-2.4.0", "DeviceID": "pos-nyc-001", "FirmwareVersion": "2.4.0"} {
		got, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(key))
		assert.True(t, ok, key)
		assert.Equal(t, want, got, key)
	}
}
