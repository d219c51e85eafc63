package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// runDevices starts the current phase's devices through the sliding
// window and returns once they have all finished, or once nothing more
// may start in this run (cancel, abort, continue-as-new).
func (r *rollout) runDevices() error {
	r.step = stepDevices
	r.refreshStatus()
	for {
		if err := workflow.Await(r.loopCtx, func() bool { return r.canStart() || r.settled() }); err != nil {
			return err
		}
		if !r.canStart() {
			return nil
		}
		r.startNext()
	}
}

// canStart: a device of this phase is waiting (or may be, on the next
// page) and nothing holds it back.
func (r *rollout) canStart() bool {
	return !r.stopping() && !r.cp.Paused && !r.draining && r.windowOpen && r.rateReady &&
		r.running < r.spec.Concurrency() && r.cp.Started < r.phaseEnd() && !r.exhausted()
}

// settled: nothing runs and nothing more will start in this phase of
// this run.
func (r *rollout) settled() bool {
	if r.running > 0 {
		return false
	}
	return r.stopping() || r.draining || r.exhausted() || r.cp.Started >= r.phaseEnd()
}

func (r *rollout) exhausted() bool { return len(r.pending) == 0 && r.cp.Exhausted }

func (r *rollout) startNext() {
	if len(r.pending) == 0 {
		if err := r.fetch(); err != nil {
			r.fatal = err
			return
		}
		// Reading the page took time: a cancel, pause, abort or the
		// window's end may have come meanwhile.
		if len(r.pending) == 0 || !r.canStart() {
			return
		}
	}
	target := r.pending[0]
	r.pending = r.pending[1:]
	r.cp.Cursor = target.Key
	r.cp.Started++
	phase := r.cp.Phase
	r.cp.Phases[phase].Started++
	r.running++
	r.limitRate()

	future := workflow.ExecuteChildWorkflow(
		workflow.WithChildOptions(r.childCtx, deviceChildOptions(r.spec, target.ID)),
		DeviceUpdateWorkflow,
		DeviceRequest{
			RolloutID: r.spec.ID,
			DeviceID:  target.ID,
			Address:   target.Address,
			Firmware:  r.spec.Firmware,
			Policy:    r.spec.Device,
		})
	workflow.Go(r.loopCtx, func(ctx workflow.Context) {
		var result DeviceResult
		err := future.Get(ctx, &result)
		r.running--
		r.record(phase, target.ID, result, err)
	})

	if r.historyFull() {
		r.draining = true
	}
}

// fetch reads the next page of targets after the cursor.
func (r *rollout) fetch() error {
	ctx := workflow.WithActivityOptions(r.loopCtx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{ErrInventory},
		},
	})
	var page TargetPage
	err := workflow.ExecuteActivity(ctx, ListTargetsActivity, ListTargetsRequest{
		RolloutID: r.spec.ID,
		Inventory: r.spec.Inventory,
		Selector:  r.spec.Selector,
		After:     r.cp.Cursor,
		Limit:     r.pageSize(),

		RollbackOf: r.spec.RollbackOf,
		Expect:     r.spec.RollbackExpect,
	}).Get(ctx, &page)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("reading the inventory: "+reasonOf(err), ErrInventory, nil)
	}
	if r.cp.Runs == 1 && r.cp.Selected == 0 {
		r.cp.Selected = page.Selected
	}
	r.pending = page.Targets
	r.cp.Exhausted = !page.More
	return nil
}

// pageSize keeps a page's worth of targets comfortably below the payload
// limits while giving the window enough to work with.
func (r *rollout) pageSize() int {
	return min(1000, max(100, 2*r.spec.Concurrency()))
}

// record counts a device's outcome, once, in the rollout and its phase.
func (r *rollout) record(phase int, deviceID string, result DeviceResult, err error) {
	counts := []*Counts{&r.cp.Counts, &r.cp.Phases[phase].Counts}
	for _, c := range counts {
		switch {
		case err == nil && result.Outcome == OutcomeAlreadyCurrent:
			c.AlreadyCurrent++
		case err == nil:
			c.Succeeded++
		case temporal.IsCanceledError(err):
			c.Cancelled++
		default:
			c.Failed++
		}
	}
	if err != nil && !temporal.IsCanceledError(err) && len(r.cp.Failures) < MaxListedFailures {
		r.cp.Failures = append(r.cp.Failures, DeviceFailure{DeviceID: deviceID, Reason: reasonOf(err)})
	}
	if result.WaitedOffline || errorTypeOf(err) == ErrDeviceOffline || errorTypeOf(err) == ErrDeviceUnreachable {
		r.cp.Offline++
		if len(r.cp.OfflineIDs) < MaxListedFailures {
			outcome := result.Outcome
			if err != nil {
				outcome = OutcomeFailed
			}
			r.cp.OfflineIDs = append(r.cp.OfflineIDs, OfflineDevice{DeviceID: deviceID, Outcome: outcome})
		}
	}
	r.checkAbort()
}

// historyFull: this run should stop starting devices and, once the
// running ones finish, continue as new. The children still running add a
// few events each while they finish, so the budget leaves room for them.
func (r *rollout) historyFull() bool {
	info := workflow.GetInfo(r.loopCtx)
	events := r.spec.HistoryBudget()
	budget := max(events/5, events-4*r.spec.Concurrency())
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= budget
}

// deviceChildOptions makes the child ID "<rolloutID>/<deviceID>" and
// refuses to reuse it, so one rollout can never update a device twice.
func deviceChildOptions(spec Spec, deviceID string) workflow.ChildWorkflowOptions {
	return workflow.ChildWorkflowOptions{
		WorkflowID:            DeviceUpdateID(spec.ID, deviceID),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation:   true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			RolloutIDAttr.ValueSet(spec.ID),
			DeviceIDAttr.ValueSet(deviceID),
			FirmwareVersionAttr.ValueSet(spec.Firmware.Version),
		),
	}
}

// errorTypeOf is the application error type in a child's error chain.
func errorTypeOf(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// reasonOf digs the operator-facing reason out of a child or activity
// error chain.
func reasonOf(err error) string {
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	if errors.As(err, &started) {
		return "already updated by an earlier run of this rollout ID"
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return fmt.Sprintf("timed out (%s)", timeoutErr.TimeoutType())
	}
	return err.Error()
}
