package workflows

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// The test environment does not count history events, so these tests
// feed GetCurrentHistoryLength themselves: a run starts at history.start
// events and each child started adds history.perChild (a real child costs
// about 6: initiated, started, completed, plus a workflow task). With
// spec.MaxHistoryEvents (at least 300) that makes runs hand over after a
// few dozen devices.
type historyModel struct{ start, perChild int }

var realisticHistory = historyModel{start: 10, perChild: 6}

// rolloutRun is what one workflow run did.
type rolloutRun struct {
	checkpoint *Checkpoint // handed over to the next run; nil for the last
	children   []string
}

// runAcrossContinueAsNew executes the rollout, and each continue-as-new
// it asks for in a fresh environment, until a run completes. setup, when
// set, prepares each environment (run counts from 1).
func runAcrossContinueAsNew(t *testing.T, f *fleet, spec Spec, hist func(run int) historyModel, setup func(env *testsuite.TestWorkflowEnvironment, run int)) (Report, []rolloutRun) {
	t.Helper()
	var cp *Checkpoint
	var runs []rolloutRun
	for run := 1; run <= 50; run++ {
		env := newRolloutEnv(t, f, spec)
		var this rolloutRun
		model := realisticHistory
		if hist != nil {
			model = hist(run)
		}
		history := model.start
		env.SetCurrentHistoryLength(history)
		env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
			this.children = append(this.children, info.WorkflowExecution.ID)
			history += model.perChild
			env.SetCurrentHistoryLength(history)
		})
		if setup != nil {
			setup(env, run)
		}
		env.ExecuteWorkflow(FirmwareRollout, spec, cp)
		require.True(t, env.IsWorkflowCompleted(), "run %d did not end", run)

		var can *workflow.ContinueAsNewError
		if err := env.GetWorkflowError(); errors.As(err, &can) {
			assert.Equal(t, FirmwareRolloutWorkflow, can.WorkflowType.Name)
			var next Spec
			var nextCP *Checkpoint
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next, &nextCP))
			require.Equal(t, spec, next, "the spec is handed over unchanged")
			require.NotNil(t, nextCP)
			require.Equal(t, run, nextCP.Runs)
			require.Equal(t, nextCP.Started, nextCP.Counts.Done(), "run %d handed over with devices still running", run)
			this.checkpoint = nextCP
			runs = append(runs, this)
			cp = nextCP
			continue
		}
		runs = append(runs, this)
		return rolloutResult(t, env), runs
	}
	t.Fatal("the rollout did not complete in 50 runs")
	return Report{}, nil
}

func TestRolloutPagingAndContinueAsNew(t *testing.T) {
	const n = 300
	ids := deviceIDs(n)
	f := newFleet(ids...)
	refused := []string{ids[7], ids[150], ids[299]}
	for _, id := range refused {
		f.pushes[id] = pushAlways(errDeviceRefused("push: device refused the upload: 403 Forbidden"))
	}
	spec := validSpec("fw-paging")
	spec.MaxConcurrent = 10
	spec.MaxHistoryEvents = 300 // budget with a window of 10: 260 events, ~42 children a run

	rep, runs := runAcrossContinueAsNew(t, f, spec, nil, nil)

	assert.Greater(t, len(runs), 3, "the rollout continued as new several times")
	assert.Equal(t, len(runs), rep.Runs)
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, n, rep.Selected)
	assert.Equal(t, n, rep.Started)
	assert.Equal(t, Counts{Succeeded: n - 3, Failed: 3}, rep.Counts)
	var failed []string
	for _, fl := range rep.Failures {
		failed = append(failed, fl.DeviceID)
		assert.Equal(t, "push: device refused the upload: 403 Forbidden", fl.Reason)
	}
	assert.ElementsMatch(t, refused, failed, "failures of every run are kept")

	// every device pushed exactly once over all runs, in one child each
	assert.Equal(t, ids, f.pushedDevices())
	for _, id := range ids {
		require.Equal(t, 1, f.pushCount(id), "pushes to %s", id)
	}
	var children []string
	for i, r := range runs {
		children = append(children, r.children...)
		if r.checkpoint != nil {
			assert.LessOrEqual(t, len(r.children), 60, "run %d started too many devices for its history budget", i+1)
		}
	}
	assert.Len(t, children, n)
	slices.Sort(children)
	assert.Equal(t, n, len(slices.Compact(children)), "no device started twice")

	// the rollout pages in OrderKey order from its cursor: never a page
	// starting before an earlier one, never larger than the limit
	require.NotEmpty(t, f.listCalls)
	for i, c := range f.listCalls {
		assert.Equal(t, 100, c.Limit)
		assert.Equal(t, spec.ID, c.RolloutID)
		if i > 0 {
			assert.Greater(t, c.After, f.listCalls[i-1].After, "list call %d goes back", i)
		}
	}
	// checkpoints stay bounded and consistent
	prevStarted := 0
	for i, r := range runs[:len(runs)-1] {
		cp := r.checkpoint
		assert.Equal(t, n, cp.Selected)
		assert.Greater(t, cp.Started, prevStarted, "run %d made progress", i+1)
		assert.Equal(t, rep.StartedAt, cp.StartedAt, "the rollout's start time survives continue-as-new")
		assert.NotEmpty(t, cp.Cursor)
		prevStarted = cp.Started
	}
}

// The last page (More=false) can be fetched by a run that then hands over
// before starting all of it; the next run must still start the rest.
func TestRolloutContinueAsNewDuringLastPage(t *testing.T) {
	const n = 60 // one page (limit 100) holds them all
	ids := deviceIDs(n)
	f := newFleet(ids...)
	spec := validSpec("fw-last-page")
	spec.MaxConcurrent = 5
	spec.MaxHistoryEvents = 300 // budget with a window of 5: 280 events, ~45 children a run

	rep, runs := runAcrossContinueAsNew(t, f, spec, nil, nil)

	require.Greater(t, len(runs), 1)
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, n, rep.Started, "devices lost across continue-as-new")
	assert.Equal(t, Counts{Succeeded: n}, rep.Counts)
	assert.Equal(t, ids, f.pushedDevices())
}

// A rollout paused when it hands over stays paused in the next run until
// resumed.
func TestRolloutPausedAcrossContinueAsNew(t *testing.T) {
	ids := deviceIDs(12)
	f := newFleet(ids...)
	f.defPush = slowPush
	spec := validSpec("fw-paused-can")
	spec.MaxConcurrent = 3
	spec.MaxHistoryEvents = 300 // budget with a window of 3: 288 events
	// run 1 starts with a nearly full history: it hands over after the
	// first device it starts
	hist := func(run int) historyModel {
		if run == 1 {
			return historyModel{start: 290, perChild: 6}
		}
		return realisticHistory
	}

	var whilePaused Report
	var resume *updateResult
	rep, runs := runAcrossContinueAsNew(t, f, spec, hist, func(env *testsuite.TestWorkflowEnvironment, run int) {
		switch run {
		case 1:
			// pause before the first device ends
			at(env, sec(0.5), func() { sendUpdate(env, PauseUpdate) })
		case 2:
			at(env, sec(5), func() { whilePaused = queryProgress(t, env) })
			at(env, sec(10), func() { resume = sendUpdate(env, ResumeUpdate) })
		}
	})

	require.GreaterOrEqual(t, len(runs), 2)
	require.True(t, runs[0].checkpoint.Paused, "the pause is handed over")
	assert.Equal(t, StatusPaused, whilePaused.Status)
	assert.Equal(t, runs[0].checkpoint.Started, whilePaused.Started, "nothing starts while paused")
	assert.Equal(t, 0, whilePaused.Running)
	require.NotNil(t, resume)
	assert.True(t, resume.accepted)
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 12}, rep.Counts)
	assert.Equal(t, ids, f.pushedDevices())
}

// Cancelling in a later run counts the devices that no run started.
func TestRolloutCancelAfterContinueAsNew(t *testing.T) {
	ids := deviceIDs(40)
	f := newFleet(ids...)
	f.defPush = slowPush
	spec := validSpec("fw-cancel-can")
	spec.MaxConcurrent = 3
	spec.MaxHistoryEvents = 300 // budget with a window of 3: 288 events, ~14 children a run

	var startedBefore int
	hist := func(int) historyModel { return historyModel{start: 10, perChild: 20} }
	rep, runs := runAcrossContinueAsNew(t, f, spec, hist, func(env *testsuite.TestWorkflowEnvironment, run int) {
		if run == 2 {
			at(env, sec(0.5), func() {
				startedBefore = queryProgress(t, env).Started
				sendUpdate(env, CancelUpdate, CancelRequest{})
			})
		}
	})

	require.Len(t, runs, 2)
	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, 2, rep.Runs)
	assert.Equal(t, startedBefore, rep.Started)
	assert.Equal(t, Counts{Succeeded: startedBefore, Cancelled: 40 - startedBefore}, rep.Counts)
	assert.Len(t, f.pushedDevices(), startedBefore)
}

// A page that cannot be read in a later run fails the rollout after the
// running devices finish, naming the cause.
func TestRolloutInventoryFailsOnLaterPage(t *testing.T) {
	ids := deviceIDs(150)
	f := newFleet(ids...)
	spec := validSpec("fw-page-error")
	spec.MaxConcurrent = 5
	env := newRolloutEnv(t, f, spec)
	calls := 0
	env.OnActivity(ListTargetsActivity, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req ListTargetsRequest) (TargetPage, error) {
			calls++
			if calls == 1 {
				return f.ListTargets(ctx, req)
			}
			return TargetPage{}, temporal.NewNonRetryableApplicationError("inventory: 500 Internal Server Error", ErrInventory, nil)
		})
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))

	require.True(t, env.IsWorkflowCompleted())
	appErr := requireAppError(t, env.GetWorkflowError(), ErrInventory)
	assert.Contains(t, appErr.Message(), "reading the inventory: inventory: 500 Internal Server Error")
	assert.Equal(t, 2, calls)
	assert.Len(t, f.pushedDevices(), 100, "the first page was rolled out and finished")
	for _, id := range f.pushedDevices() {
		assert.Equal(t, 1, f.verifyCount(id))
	}
}
