package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

func TestRolloutAllDevicesUpdated(t *testing.T) {
	ids := deviceIDs(12)
	f := newFleet(ids...)
	spec := validSpec("fw-all-ok")
	spec.MaxConcurrent = 4

	rep := runRollout(t, f, spec)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Empty(t, rep.Reason)
	assert.Equal(t, 12, rep.Selected)
	assert.Equal(t, 12, rep.Started)
	assert.Equal(t, 0, rep.Running)
	assert.Equal(t, Counts{Succeeded: 12}, rep.Counts)
	assert.Empty(t, rep.Failures)
	assert.Equal(t, 1, rep.Runs)
	assert.False(t, rep.StartedAt.IsZero())
	assert.False(t, rep.EndedAt.Before(rep.StartedAt))
	assert.Equal(t, ids, f.pushedDevices())
	for _, id := range ids {
		assert.Equal(t, 1, f.pushCount(id), "pushes to %s", id)
		assert.Equal(t, 1, f.verifyCount(id), "verifications of %s", id)
	}
	checkInvariants(t, rep, spec)
}

// The stock temporal CLI starts the rollout with one input, the spec: the
// missing checkpoint must decode as nil (first run).
func TestRolloutStartedWithSpecOnly(t *testing.T) {
	f := newFleet(deviceIDs(3)...)
	spec := validSpec("fw-cli")
	env := newRolloutEnv(t, f, spec)
	env.ExecuteWorkflow(FirmwareRolloutWorkflow, spec)
	rep := rolloutResult(t, env)
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 3}, rep.Counts)
	assert.Equal(t, 1, rep.Runs)
}

func TestRolloutPushAndVerifyRequests(t *testing.T) {
	f := newFleet("pos-1")
	spec := validSpec("fw-req")
	spec.Device = DevicePolicy{VerifyTimeout: "2m"}
	rep := runRollout(t, f, spec)
	require.Equal(t, StatusCompleted, rep.Status)

	require.Len(t, f.verifyReqs, 1)
	v := f.verifyReqs[0]
	assert.Equal(t, "pos-1", v.DeviceID)
	assert.Equal(t, "http://devices.test/pos-1", v.Address)
	assert.Equal(t, "2.4.0", v.Version)
	assert.Equal(t, "2.3.1", v.PreviousVersion, "the version PushFirmware saw is handed to VerifyVersion")
	assert.Equal(t, 2*time.Minute, v.Within)
}

// The window: with maxConcurrent=3 and 20 devices, every push takes one
// retry interval of simulated time, and the progress query is sampled in
// the middle of every interval. Running must be exactly 3 while at least 3
// devices remain, and the test environment itself must never see more
// than 3 DeviceUpdate children alive at once.
func TestRolloutConcurrencyBound(t *testing.T) {
	const n, window = 20, 3
	f := newFleet(deviceIDs(n)...)
	f.defPush = slowPush
	spec := validSpec("fw-window")
	spec.MaxConcurrent = window

	env := newRolloutEnv(t, f, spec)
	alive, maxAlive := 0, 0
	env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) {
		alive++
		maxAlive = max(maxAlive, alive)
	})
	env.SetOnChildWorkflowCompletedListener(func(*workflow.Info, converter.EncodedValue, error) { alive-- })
	var samples []Report
	for i := 0; i < 8; i++ {
		env.RegisterDelayedCallback(func() {
			samples = append(samples, queryProgress(t, env))
		}, time.Duration(i)*time.Second+500*time.Millisecond)
	}
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: n}, rep.Counts)
	assert.Equal(t, window, maxAlive, "DeviceUpdate children alive at once")
	assert.Equal(t, 0, alive)

	require.Len(t, samples, 7, "the rollout takes ceil(20/3)=7 push intervals")
	for i, s := range samples {
		checkInvariants(t, s, spec)
		started := min(n, window*(i+1))
		assert.Equal(t, StatusRunning, s.Status, "sample %d", i)
		assert.Equal(t, started, s.Started, "sample %d: started", i)
		assert.Equal(t, started-window*i, s.Running, "sample %d: running", i)
		assert.Equal(t, window*i, s.Counts.Succeeded, "sample %d: succeeded", i)
		assert.Equal(t, n, s.Selected)
	}
	for _, id := range deviceIDs(n) {
		assert.Equal(t, 2, f.pushCount(id), "%s: one transient failure, one success", id)
		assert.Equal(t, 1, f.verifyCount(id))
	}
}

func TestRolloutTransientDeviceIsRetried(t *testing.T) {
	f := newFleet("flaky", "steady")
	f.pushes["flaky"] = failFirst(2, unavailable())
	spec := validSpec("fw-5xx")

	rep := runRollout(t, f, spec)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 2}, rep.Counts)
	assert.Empty(t, rep.Failures)
	assert.Equal(t, 3, f.pushCount("flaky"), "two 503s then success")
	assert.Equal(t, 1, f.verifyCount("flaky"))
	assert.Equal(t, 1, f.pushCount("steady"))
}

// Permanent refusals cost exactly one attempt, whether the activity marks
// them non-retryable or the retry policy's non-retryable types catch them.
func TestRolloutPermanentFailuresAreNotRetried(t *testing.T) {
	cases := []struct {
		name    string
		push    pushFn
		verify  verifyFn
		reason  string
		pushes  int
		verify1 int
	}{
		{
			name:   "4xx non-retryable",
			push:   pushAlways(temporal.NewNonRetryableApplicationError("push: device refused the upload: 403 Forbidden", ErrDeviceRefused, nil)),
			reason: "push: device refused the upload: 403 Forbidden",
			pushes: 1,
		},
		{
			name:   "4xx retryable-constructed",
			push:   pushAlways(temporal.NewApplicationError("push: device refused the upload: 404 Not Found", ErrDeviceRefused)),
			reason: "push: device refused the upload: 404 Not Found",
			pushes: 1,
		},
		{
			name:   "checksum mismatch",
			push:   pushAlways(temporal.NewApplicationError("push: device rejected the image: checksum mismatch (422)", ErrChecksumMismatch)),
			reason: "checksum mismatch (422)",
			pushes: 1,
		},
		{
			name:   "bad device answer",
			push:   pushAlways(temporal.NewApplicationError("push: device answered a redirect", ErrBadDeviceAnswer)),
			reason: "push: device answered a redirect",
			pushes: 1,
		},
		{
			name:   "firmware source unreadable",
			push:   pushAlways(temporal.NewApplicationError("push: reading the image: file not found", ErrFirmwareSource)),
			reason: "reading the image: file not found",
			pushes: 1,
		},
		{
			name: "wrong version after reboot",
			verify: func(_ context.Context, req VerifyRequest, _ int) (VerifyResult, error) {
				return VerifyResult{}, temporal.NewApplicationError("verify: device came back on 2.3.1, expected "+req.Version, ErrWrongVersion)
			},
			reason:  "verify: device came back on 2.3.1, expected 2.4.0",
			pushes:  1,
			verify1: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("bad", "good-1", "good-2")
			if tc.push != nil {
				f.pushes["bad"] = tc.push
			}
			if tc.verify != nil {
				f.verifies["bad"] = tc.verify
			}
			spec := validSpec("fw-permanent")

			rep := runRollout(t, f, spec)

			assert.Equal(t, StatusCompletedWithFailures, rep.Status)
			assert.Equal(t, "1 of 3 devices failed", rep.Reason)
			assert.Equal(t, Counts{Succeeded: 2, Failed: 1}, rep.Counts)
			require.Len(t, rep.Failures, 1)
			assert.Equal(t, "bad", rep.Failures[0].DeviceID)
			assert.Contains(t, rep.Failures[0].Reason, tc.reason)
			assert.Equal(t, tc.pushes, f.pushCount("bad"), "push attempts")
			assert.Equal(t, tc.verify1, f.verifyCount("bad"), "verify attempts")
			checkInvariants(t, rep, spec)
		})
	}
}

func TestRolloutAlreadyCurrentSkipsVerify(t *testing.T) {
	f := newFleet("current", "old")
	f.pushes["current"] = func(context.Context, int) (PushResult, error) {
		return PushResult{AlreadyInstalled: true, PreviousVersion: "2.4.0"}, nil
	}
	spec := validSpec("fw-current")

	rep := runRollout(t, f, spec)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 1, AlreadyCurrent: 1}, rep.Counts)
	assert.Equal(t, 1, f.pushCount("current"))
	assert.Equal(t, 0, f.verifyCount("current"), "VerifyVersion must not run for a device already current")
	assert.Equal(t, 1, f.verifyCount("old"))
}

func TestRolloutRetriesExhausted(t *testing.T) {
	cases := []struct {
		name     string
		attempts int // spec value; 0 = default
		want     int
	}{
		{"default maximumAttempts", 0, DefaultMaximumAttempts},
		{"spec maximumAttempts 2", 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("offline", "online")
			f.pushes["offline"] = pushAlways(unavailable())
			spec := validSpec("fw-exhausted")
			spec.Device.Retry.MaximumAttempts = tc.attempts

			rep := runRollout(t, f, spec)

			assert.Equal(t, StatusCompletedWithFailures, rep.Status)
			assert.Equal(t, Counts{Succeeded: 1, Failed: 1}, rep.Counts)
			assert.Equal(t, tc.want, f.pushCount("offline"))
			assert.Equal(t, 0, f.verifyCount("offline"))
			fail, ok := failureFor(rep, "offline")
			require.True(t, ok)
			assert.Contains(t, fail.Reason, "503 Service Unavailable")
		})
	}
}

// A fleet with every kind of outcome at once: counts add up and every
// failure is listed with its own reason.
func TestRolloutMixedFleet(t *testing.T) {
	ids := deviceIDs(10)
	f := newFleet(ids...)
	f.pushes[ids[1]] = failFirst(2, unavailable())
	f.pushes[ids[2]] = pushAlways(temporal.NewApplicationError("push: device refused the upload: 403 Forbidden", ErrDeviceRefused))
	f.pushes[ids[3]] = func(context.Context, int) (PushResult, error) {
		return PushResult{AlreadyInstalled: true}, nil
	}
	f.pushes[ids[4]] = pushAlways(temporal.NewApplicationError("push: checksum mismatch", ErrChecksumMismatch))
	f.verifies[ids[5]] = func(context.Context, VerifyRequest, int) (VerifyResult, error) {
		return VerifyResult{}, temporal.NewApplicationError("verify: came back on 2.3.1", ErrWrongVersion)
	}
	spec := validSpec("fw-mixed")
	spec.MaxConcurrent = 2

	rep := runRollout(t, f, spec)

	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, Counts{Succeeded: 6, AlreadyCurrent: 1, Failed: 3}, rep.Counts)
	assert.Equal(t, "3 of 10 devices failed", rep.Reason)
	reasons := map[string]string{}
	for _, fl := range rep.Failures {
		reasons[fl.DeviceID] = fl.Reason
	}
	assert.Equal(t, map[string]string{
		ids[2]: "push: device refused the upload: 403 Forbidden",
		ids[4]: "push: checksum mismatch",
		ids[5]: "verify: came back on 2.3.1",
	}, reasons)
	checkInvariants(t, rep, spec)
}

func TestRolloutFailuresListIsBounded(t *testing.T) {
	ids := deviceIDs(MaxListedFailures + 20)
	f := newFleet(ids...)
	f.defPush = pushAlways(temporal.NewApplicationError("push: 403", ErrDeviceRefused))
	spec := validSpec("fw-many-failures")
	spec.MaxConcurrent = 200

	rep := runRollout(t, f, spec)

	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, len(ids), rep.Counts.Failed)
	assert.Len(t, rep.Failures, MaxListedFailures)
}

// Child workflow IDs are "<rolloutID>/<deviceID>", and the activities of a
// device run in its child.
func TestRolloutChildWorkflowIDs(t *testing.T) {
	ids := []string{"pos-nyc-001", "pos-nyc-002", "kiosk.7"}
	f := newFleet(ids...)
	spec := validSpec("fw-2.4.0")

	var children []string
	env := newRolloutEnv(t, f, spec)
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		assert.Equal(t, DeviceUpdateWorkflow, info.WorkflowType.Name)
		children = append(children, info.WorkflowExecution.ID)
	})
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)
	require.Equal(t, Counts{Succeeded: 3}, rep.Counts)

	want := []string{"fw-2.4.0/kiosk.7", "fw-2.4.0/pos-nyc-001", "fw-2.4.0/pos-nyc-002"}
	assert.ElementsMatch(t, want, children)
	for _, id := range ids {
		assert.Equal(t, []string{"fw-2.4.0/" + id}, f.pushWFIDs[id])
	}
}

// Devices start in OrderKey order, not inventory order.
func TestRolloutStartsDevicesInOrderKeyOrder(t *testing.T) {
	ids := deviceIDs(30)
	f := newFleet(ids...)
	spec := validSpec("fw-order")
	spec.MaxConcurrent = 1

	var started []string
	env := newRolloutEnv(t, f, spec)
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		started = append(started, strings.TrimPrefix(info.WorkflowExecution.ID, spec.ID+"/"))
	})
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rolloutResult(t, env)

	require.Len(t, started, 30)
	assert.IsIncreasing(t, keysOf(spec.ID, started))
	assert.NotEqual(t, ids, started, "the order is spread, not the inventory's")
}

func keysOf(rolloutID string, ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = OrderKey(rolloutID, id)
	}
	return keys
}

func TestRolloutInvalidSpecFailsNamingTheField(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"no version", func(s *Spec) { s.Firmware.Version = "" }, "firmware.version"},
		{"bad sha", func(s *Spec) { s.Firmware.SHA256 = "abc" }, "firmware.sha256"},
		{"bad concurrency", func(s *Spec) { s.MaxConcurrent = -1 }, "maxConcurrent"},
		{"bad push timeout", func(s *Spec) { s.Device.PushTimeout = "ten minutes" }, "device.pushTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("a")
			spec := validSpec("fw-invalid")
			tc.edit(&spec)
			env := newRolloutEnv(t, f, spec)
			env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))

			require.True(t, env.IsWorkflowCompleted())
			appErr := requireAppError(t, env.GetWorkflowError(), ErrInvalidSpec)
			assert.True(t, appErr.NonRetryable())
			assert.Contains(t, appErr.Message(), "invalid rollout spec: "+tc.field+":")
			assert.Empty(t, f.listCalls, "nothing is read before the spec is valid")
			assert.Empty(t, f.pushedDevices())
		})
	}
}

func TestRolloutSpecIDMustBeWorkflowID(t *testing.T) {
	f := newFleet("a")
	spec := validSpec("fw-2.4.0")
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "something-else", TaskQueue: TaskQueue})
	Register(env)
	f.register(env)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))

	require.True(t, env.IsWorkflowCompleted())
	appErr := requireAppError(t, env.GetWorkflowError(), ErrInvalidSpec)
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), `"fw-2.4.0"`)
	assert.Contains(t, appErr.Message(), `"something-else"`)
	assert.Empty(t, f.pushedDevices())
}

func TestRolloutEmptySelection(t *testing.T) {
	f := newFleet() // the selector matches nothing
	spec := validSpec("fw-empty")
	env := newRolloutEnv(t, f, spec)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))

	require.True(t, env.IsWorkflowCompleted())
	appErr := requireAppError(t, env.GetWorkflowError(), ErrEmptySelection)
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), "matched no devices")
	require.Len(t, f.listCalls, 1)
	assert.Equal(t, ListTargetsRequest{
		RolloutID: spec.ID, Inventory: spec.Inventory, Limit: 100,
	}, f.listCalls[0])
}

func TestRolloutUnreadableInventory(t *testing.T) {
	f := newFleet("a")
	f.listErr = temporal.NewNonRetryableApplicationError("inventory: 404 Not Found", ErrInventory, nil)
	spec := validSpec("fw-no-inventory")
	env := newRolloutEnv(t, f, spec)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))

	require.True(t, env.IsWorkflowCompleted())
	appErr := requireAppError(t, env.GetWorkflowError(), ErrInventory)
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), "inventory: 404 Not Found")
	assert.Len(t, f.listCalls, 1, "InvalidInventory is not retried")
	assert.Empty(t, f.pushedDevices())
}

func TestRolloutSelectorIsPassedToListTargets(t *testing.T) {
	f := newFleet("a")
	spec := validSpec("fw-selector")
	spec.Selector = Selector{Tags: map[string]string{"region": "northeast"}, Status: []string{"online"}, VersionBelow: "2.2.0"}
	spec.MaxConcurrent = 100
	rep := runRollout(t, f, spec)
	require.Equal(t, StatusCompleted, rep.Status)
	require.NotEmpty(t, f.listCalls)
	assert.Equal(t, spec.Selector, f.listCalls[0].Selector)
	assert.Equal(t, spec.Inventory, f.listCalls[0].Inventory)
	assert.Equal(t, 200, f.listCalls[0].Limit, "page size is twice the window, at least 100")
}

func requireAppError(t *testing.T, err error, errType string) *temporal.ApplicationError {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "not an application error: %v", err)
	require.Equal(t, errType, appErr.Type(), fmt.Sprintf("error: %v", err))
	return appErr
}

// A device listed twice in the inventory is still flashed only once: the
// second child is refused by its workflow ID.
func TestRolloutDuplicateInventoryEntryFlashedOnce(t *testing.T) {
	f := newFleet("a", "a", "b")
	spec := validSpec("fw-dup")
	rep := runRollout(t, f, spec)

	assert.Equal(t, 1, f.pushCount("a"), "a device listed twice was flashed twice")
	assert.Equal(t, 1, f.pushCount("b"))
	assert.Equal(t, 3, rep.Started)
	assert.Equal(t, 2, rep.Counts.Succeeded)
	assert.Equal(t, rep.Selected, rep.Counts.Done(), "every entry has an outcome")
}
