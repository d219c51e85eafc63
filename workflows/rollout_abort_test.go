package workflows

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// Automatic abort: maxFailurePercent over the finished devices, once
// minDevices have finished.
//
// Timeline of TestRolloutAbortsWhenThresholdCrossed (window of 3, o[i] is
// the i-th device in OrderKey order; 1s/3s/7s are one/two/three retry
// intervals of simulated time):
//
//	o0 succeeds 0-7s   o1 fails 0-3s (two 503s, then 403)   o2 succeeds 0-1s
//	o3 succeeds 1-2s   o4 fails 2-5s                        o5 succeeds 3-4s
//	o6 succeeds 4-11s
//
// At 5s o4 is the 5th finished device and the 2nd failure: 40% > 20%, the
// rollout aborts; o0 and o6 are still running and finish, nothing else
// starts.
func TestRolloutAbortsWhenThresholdCrossed(t *testing.T) {
	ids := deviceIDs(20)
	f := newFleet(ids...)
	spec := validSpec("fw-abort")
	spec.MaxConcurrent = 3
	spec.Abort = &Abort{MaxFailurePercent: 20, MinDevices: 5}
	o := inOrderKeyOrder(spec.ID, ids)
	f.defPush = slowPush
	f.pushes[o[0]] = pushTaking(3)
	f.pushes[o[1]] = failingAfter(2)
	f.pushes[o[4]] = failingAfter(2)
	f.pushes[o[6]] = pushTaking(3)
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	tr := traceRollout(env, spec.ID)

	var before, aborted Report
	var pause, resume *updateResult
	at(env, sec(4.5), func() { before = queryProgress(t, env) })
	at(env, sec(6), func() {
		aborted = queryProgress(t, env)
		pause = sendUpdate(env, PauseUpdate)
		resume = sendUpdate(env, ResumeUpdate)
	})
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	reason := "aborted: 2 of 5 finished devices failed (40.0%), above abort.maxFailurePercent 20%"
	assert.Equal(t, StatusRunning, before.Status, "1 of 4 finished failed: below minDevices")
	assert.Equal(t, Counts{Succeeded: 3, Failed: 1}, before.Counts)

	// aborted already, but not over: the running devices have no outcome yet
	assert.Equal(t, aborted.Started-aborted.Running, aborted.Counts.Done())
	assert.Equal(t, StatusAborted, aborted.Status)
	assert.Equal(t, reason, aborted.Reason)
	assert.Equal(t, 2, aborted.Running, "running devices finish")
	assert.ErrorContains(t, pause.rejected, "was aborted: "+reason)
	assert.ErrorContains(t, resume.rejected, "was aborted")
	assert.Equal(t, phaseStart.Add(sec(5)), tr.firstStatus(StatusAborted))

	assert.Equal(t, StatusAborted, rep.Status)
	assert.Equal(t, reason, rep.Reason)
	assert.Equal(t, 7, rep.Started)
	assert.Equal(t, Counts{Succeeded: 5, Failed: 2, Cancelled: 13}, rep.Counts)
	assert.Equal(t, sec(11), rep.EndedAt.Sub(rep.StartedAt), "the rollout ends when o6 finishes")
	assert.Equal(t, sorted(o[:7]), f.pushedDevices(), "no device starts after the abort")
	assert.Equal(t, 0, tr.startsIn(phaseStart.Add(sec(5)), phaseStart.Add(time.Hour)))
	assert.Equal(t, phaseStart.Add(sec(11)), tr.endOf(o[6]))

	// one device, one outcome, whatever its attempts
	assert.Equal(t, 3, f.pushCount(o[1]))
	assert.Equal(t, 3, f.pushCount(o[4]))
	assert.Equal(t, 4, f.pushCount(o[0]))
	require.Len(t, rep.Failures, 2)
	assert.Equal(t, []string{o[1], o[4]}, []string{rep.Failures[0].DeviceID, rep.Failures[1].DeviceID})
	assert.Equal(t, "push: device refused the upload: 403 Forbidden", rep.Failures[0].Reason)
	tr.requireStatusSubsequence(t, StatusRunning, StatusAborted)
	assert.Equal(t, StatusAborted, tr.statusSequence()[len(tr.statusSequence())-1])
	checkInvariants(t, rep, spec)
}

// Below the threshold, or before minDevices, failures do not abort; the
// default minDevices is 10.
func TestRolloutAbortThresholdBoundaries(t *testing.T) {
	cases := []struct {
		name    string
		abort   Abort
		failing []int // positions in OrderKey order, sequential rollout
		aborted bool
		reason  string
		started int
	}{
		{"exactly at the threshold does not abort", Abort{MaxFailurePercent: 20, MinDevices: 5}, []int{4, 9}, false, "", 10},
		{"above it aborts", Abort{MaxFailurePercent: 20, MinDevices: 5}, []int{3, 4}, true,
			"aborted: 2 of 5 finished devices failed (40.0%), above abort.maxFailurePercent 20%", 5},
		{"minDevices waits", Abort{MaxFailurePercent: 20, MinDevices: 5}, []int{0, 1}, true,
			"aborted: 2 of 5 finished devices failed (40.0%), above abort.maxFailurePercent 20%", 5},
		{"default minDevices is 10", Abort{MaxFailurePercent: 50}, []int{0, 1, 2, 3, 4, 5}, true,
			"aborted: 6 of 10 finished devices failed (60.0%), above abort.maxFailurePercent 50%", 10},
		{"zero percent: the first failure past minDevices", Abort{MaxFailurePercent: 0, MinDevices: 1}, []int{7}, true,
			"aborted: 1 of 8 finished devices failed (12.5%), above abort.maxFailurePercent 0%", 8},
		{"minDevices above the fleet never applies", Abort{MaxFailurePercent: 1, MinDevices: 11}, []int{0, 1, 2}, false, "", 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := deviceIDs(10)
			f := newFleet(ids...)
			spec := validSpec("fw-abort-edges")
			spec.MaxConcurrent = 1
			spec.Abort = &tc.abort
			require.NoError(t, spec.Validate())
			o := inOrderKeyOrder(spec.ID, ids)
			for _, p := range tc.failing {
				f.pushes[o[p]] = failingAfter(1)
			}
			rep := runRollout(t, f, spec)
			assert.Equal(t, tc.started, rep.Started)
			if tc.aborted {
				assert.Equal(t, StatusAborted, rep.Status)
				assert.Equal(t, tc.reason, rep.Reason)
				assert.Equal(t, 10-tc.started, rep.Counts.Cancelled)
			} else {
				assert.Equal(t, StatusCompletedWithFailures, rep.Status)
				assert.Equal(t, len(tc.failing), rep.Counts.Failed)
			}
			checkInvariants(t, rep, spec)
		})
	}
}

// Failures are counted exactly across continue-as-new: a sequential
// rollout of 150 devices that hands over every ~47 devices. 5% of the
// first 100 fail (positions 19, 39, 59, 79, 99), then every other one
// (100, 102, ...): with maxFailurePercent 10 the 7th of those, position
// 112, is the one that crosses it: 12 of 113 (10.6%); 11 of 111 was 9.9%.
func TestRolloutAbortCountsExactAcrossContinueAsNew(t *testing.T) {
	const n = 150
	ids := deviceIDs(n)
	f := newFleet(ids...)
	spec := validSpec("fw-abort-can")
	spec.MaxConcurrent = 1
	spec.MaxHistoryEvents = 300
	spec.Abort = &Abort{MaxFailurePercent: 10, MinDevices: 5}
	o := inOrderKeyOrder(spec.ID, ids)
	failing := map[string]bool{}
	for p := 19; p < 100; p += 20 {
		failing[o[p]] = true
	}
	for p := 100; p < n; p += 2 {
		failing[o[p]] = true
	}
	for id := range failing {
		f.pushes[id] = failingAfter(2) // two 503s, then 403
	}

	rep, runs := runAcrossContinueAsNew(t, f, spec, nil, nil)

	require.GreaterOrEqual(t, len(runs), 3, "the abort happens after two hand-overs")
	assert.Equal(t, len(runs), rep.Runs)
	assert.Equal(t, StatusAborted, rep.Status)
	assert.Equal(t, "aborted: 12 of 113 finished devices failed (10.6%), above abort.maxFailurePercent 10%", rep.Reason)
	assert.Equal(t, 113, rep.Started)
	assert.Equal(t, Counts{Succeeded: 101, Failed: 12, Cancelled: 37}, rep.Counts)
	assert.Len(t, rep.Failures, 12)

	// every checkpoint carries the exact counts of the devices started
	for i, r := range runs[:len(runs)-1] {
		cp := r.checkpoint
		wantFailed := 0
		for _, id := range o[:cp.Started] {
			if failing[id] {
				wantFailed++
			}
		}
		assert.Equal(t, Counts{Succeeded: cp.Started - wantFailed, Failed: wantFailed}, cp.Counts, "run %d", i+1)
		assert.Equal(t, cp.Counts, cp.Phases[0].Counts, "run %d: phase counts", i+1)
	}
	// each started device was pushed by one child, the failing ones three
	// times (retries), the others once; none after the abort
	for p, id := range o {
		switch {
		case p >= 113:
			assert.Equal(t, 0, f.pushCount(id), "position %d started after the abort", p)
		case failing[id]:
			assert.Equal(t, 3, f.pushCount(id), "position %d", p)
		default:
			assert.Equal(t, 1, f.pushCount(id), "position %d", p)
		}
		for _, wf := range f.pushWFIDs[id] {
			assert.Equal(t, spec.ID+"/"+id, wf)
		}
	}
}

// Nothing starts once the rollout is stopping, even when the stop (a
// cancel, a pause, an abort) comes while the next page is being read.
// 120 devices, a window of 10, pages of 100, pushes of 1s: at 10s the
// first page is done and the second read fails once (retried after 1s).
func TestRolloutNoStartAfterStopWhileReadingAPage(t *testing.T) {
	cases := []struct {
		name  string
		setup func(env *testsuite.TestWorkflowEnvironment, spec *Spec, f *fleet, o []string)
		check func(t *testing.T, rep Report, f *fleet)
	}{
		{"cancel", func(env *testsuite.TestWorkflowEnvironment, _ *Spec, _ *fleet, _ []string) {
			at(env, sec(10.5), func() { sendUpdate(env, CancelUpdate, CancelRequest{}) })
		}, func(t *testing.T, rep Report, _ *fleet) {
			assert.Equal(t, StatusCancelled, rep.Status)
			assert.Equal(t, Counts{Succeeded: 100, Cancelled: 20}, rep.Counts)
		}},
		{"abort", func(_ *testsuite.TestWorkflowEnvironment, spec *Spec, f *fleet, o []string) {
			// the last ten of the first page fail at 10s, the 100th
			// finished device crosses minDevices
			spec.Abort = &Abort{MaxFailurePercent: 5, MinDevices: 100}
			for _, id := range o[90:100] {
				f.pushes[id] = failingAfter(1)
			}
		}, func(t *testing.T, rep Report, _ *fleet) {
			assert.Equal(t, StatusAborted, rep.Status)
			assert.Equal(t, "aborted: 10 of 100 finished devices failed (10.0%), above abort.maxFailurePercent 5%", rep.Reason)
			assert.Equal(t, Counts{Succeeded: 90, Failed: 10, Cancelled: 20}, rep.Counts)
		}},
		{"pause", func(env *testsuite.TestWorkflowEnvironment, _ *Spec, _ *fleet, _ []string) {
			at(env, sec(10.5), func() { sendUpdate(env, PauseUpdate) })
			at(env, sec(30), func() {
				rep := queryProgress(t, env)
				assert.Equal(t, StatusPaused, rep.Status)
				assert.Equal(t, 100, rep.Started, "a device started while paused")
				sendUpdate(env, ResumeUpdate)
			})
		}, func(t *testing.T, rep Report, _ *fleet) {
			assert.Equal(t, StatusCompleted, rep.Status)
			assert.Equal(t, Counts{Succeeded: 120}, rep.Counts)
			assert.Equal(t, sec(32), rep.EndedAt.Sub(rep.StartedAt))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := deviceIDs(120)
			f := newFleet(ids...)
			f.defPush = slowPush
			spec := validSpec("fw-stop-on-page")
			spec.MaxConcurrent = 10
			o := inOrderKeyOrder(spec.ID, ids)
			env := newRolloutEnv(t, f, spec)
			var mu sync.Mutex
			calls := 0
			env.OnActivity(ListTargetsActivity, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, req ListTargetsRequest) (TargetPage, error) {
					mu.Lock()
					calls++
					call := calls
					mu.Unlock()
					if call == 2 {
						return TargetPage{}, fmt.Errorf("inventory: 503 Service Unavailable")
					}
					return f.ListTargets(ctx, req)
				})
			tc.setup(env, &spec, f, o)
			require.NoError(t, spec.Validate())
			env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
			rep := rolloutResult(t, env)
			tc.check(t, rep, f)
			checkInvariants(t, rep, spec)
			if rep.Status.Ended() && rep.Status != StatusCompleted {
				assert.Equal(t, 100, rep.Started, "a device started after the rollout stopped")
				assert.Len(t, f.pushedDevices(), 100)
			}
		})
	}
}
