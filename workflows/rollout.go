package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Checkpoint carries a rollout across continue-as-new. It is bounded
// whatever the fleet size: a cursor, counters and the first failures.
type Checkpoint struct {
	Cursor    string          `json:"cursor,omitempty"` // OrderKey of the last device started
	Exhausted bool            `json:"exhausted,omitempty"`
	Selected  int             `json:"selected"`
	Started   int             `json:"started"`
	Counts    Counts          `json:"counts"`
	Failures  []DeviceFailure `json:"failures,omitempty"`
	Paused    bool            `json:"paused,omitempty"`
	StartedAt time.Time       `json:"startedAt"`
	Runs      int             `json:"runs"`
}

// FirmwareRollout pushes one firmware image to the selected devices: it
// pages through the inventory in OrderKey order and keeps up to
// maxConcurrent DeviceUpdate children running (a sliding window). It
// continues as new, after letting running children finish, before its
// history grows large. The checkpoint is nil on the first run, which is
// how the stock temporal CLI starts it (one input: the spec).
func FirmwareRollout(ctx workflow.Context, spec Spec, checkpoint *Checkpoint) (Report, error) {
	if err := spec.Validate(); err != nil {
		return Report{}, temporal.NewNonRetryableApplicationError("invalid rollout spec: "+err.Error(), ErrInvalidSpec, nil)
	}
	if id := workflow.GetInfo(ctx).WorkflowExecution.ID; id != spec.ID {
		return Report{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid rollout spec: id %q differs from the workflow ID %q; start it with --workflow-id %s", spec.ID, id, spec.ID),
			ErrInvalidSpec, nil)
	}
	r := newRollout(ctx, spec, checkpoint)
	if err := r.registerHandlers(ctx); err != nil {
		return Report{}, err
	}
	r.watchCancellation(ctx)
	return r.run(ctx)
}

// rollout is the state of one workflow run.
type rollout struct {
	spec Spec
	cp   Checkpoint

	status  Status
	reason  string
	endedAt time.Time

	running int
	pending []Target // fetched in order, not yet started

	cancelRequested bool
	fatal           error
	draining        bool // letting children finish before continue-as-new

	// Children run under their own context so that cancelling the rollout
	// cancels them only when and how the rollout decides.
	childCtx       workflow.Context
	cancelChildren workflow.CancelFunc
	loopCtx        workflow.Context
}

func newRollout(ctx workflow.Context, spec Spec, checkpoint *Checkpoint) *rollout {
	r := &rollout{spec: spec, status: StatusRunning}
	if checkpoint != nil {
		r.cp = *checkpoint
	} else {
		r.cp.StartedAt = workflow.Now(ctx)
	}
	r.cp.Runs++
	if r.cp.Paused {
		r.status = StatusPaused
	}
	r.loopCtx, _ = workflow.NewDisconnectedContext(ctx)
	r.childCtx, r.cancelChildren = workflow.WithCancel(r.loopCtx)
	return r
}

// watchCancellation treats a Temporal cancellation request (Web UI,
// `temporal workflow cancel`) as a forced cancel.
func (r *rollout) watchCancellation(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		ctx.Done().Receive(ctx, nil)
		r.requestCancel(true)
	})
}

func (r *rollout) run(ctx workflow.Context) (Report, error) {
	r.setStatus(r.status)
	if !r.cp.Exhausted && r.cp.Runs == 1 {
		if err := r.fetch(); err != nil {
			return r.report(), err
		}
		if r.cp.Selected == 0 {
			return r.report(), temporal.NewNonRetryableApplicationError(
				"the selector matched no devices in the inventory", ErrEmptySelection, nil)
		}
	}

	for {
		if err := workflow.Await(r.loopCtx, func() bool { return r.canStart() || r.settled() }); err != nil {
			return r.report(), err
		}
		if r.canStart() {
			r.startNext()
			continue
		}
		break
	}

	if err := workflow.Await(r.loopCtx, func() bool { return workflow.AllHandlersFinished(r.loopCtx) }); err != nil {
		return r.report(), err
	}
	switch {
	case r.fatal != nil:
		return r.report(), r.fatal
	case r.cancelRequested:
		r.cp.Counts.Cancelled += max(0, r.cp.Selected-r.cp.Started)
		r.finish(StatusCancelled, "cancelled by the operator")
	case r.draining && !r.exhausted():
		// Targets fetched but not started are not in the checkpoint: the
		// next run fetches them again after the cursor, so the inventory
		// is not exhausted for it even if this run read its last page.
		r.cp.Exhausted = false
		return Report{}, workflow.NewContinueAsNewError(ctx, FirmwareRolloutWorkflow, r.spec, &r.cp)
	case r.cp.Counts.Failed > 0:
		r.finish(StatusCompletedWithFailures, fmt.Sprintf("%d of %d devices failed", r.cp.Counts.Failed, r.cp.Counts.Done()))
	default:
		r.finish(StatusCompleted, "")
	}
	return r.report(), nil
}

// canStart: a device is waiting (or may be, on the next page) and the
// window has room.
func (r *rollout) canStart() bool {
	return !r.cancelRequested && r.fatal == nil && !r.cp.Paused && !r.draining &&
		r.running < r.spec.Concurrency() && !r.exhausted()
}

// settled: nothing runs and nothing will start in this run.
func (r *rollout) settled() bool {
	if r.running > 0 {
		return false
	}
	return r.cancelRequested || r.fatal != nil || r.draining || r.exhausted()
}

func (r *rollout) exhausted() bool { return len(r.pending) == 0 && r.cp.Exhausted }

func (r *rollout) startNext() {
	if len(r.pending) == 0 {
		if err := r.fetch(); err != nil {
			r.fatal = err
			return
		}
		if len(r.pending) == 0 {
			return
		}
	}
	target := r.pending[0]
	r.pending = r.pending[1:]
	r.cp.Cursor = target.Key
	r.cp.Started++
	r.running++

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
		r.record(target.ID, result, err)
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

func (r *rollout) record(deviceID string, result DeviceResult, err error) {
	switch {
	case err == nil && result.Outcome == OutcomeAlreadyCurrent:
		r.cp.Counts.AlreadyCurrent++
	case err == nil:
		r.cp.Counts.Succeeded++
	case temporal.IsCanceledError(err):
		r.cp.Counts.Cancelled++
	default:
		r.cp.Counts.Failed++
		if len(r.cp.Failures) < MaxListedFailures {
			r.cp.Failures = append(r.cp.Failures, DeviceFailure{DeviceID: deviceID, Reason: reasonOf(err)})
		}
	}
}

func (r *rollout) requestCancel(force bool) {
	if r.status.Ended() {
		return
	}
	r.cancelRequested = true
	if force {
		r.cancelChildren()
	}
	r.setStatus(StatusCancelling)
}

func (r *rollout) finish(status Status, reason string) {
	r.setStatus(status)
	r.reason = reason
	r.endedAt = workflow.Now(r.loopCtx)
}

func (r *rollout) report() Report {
	return Report{
		RolloutID: r.spec.ID,
		Version:   r.spec.Firmware.Version,
		Status:    r.status,
		Reason:    r.reason,
		Selected:  r.cp.Selected,
		Started:   r.cp.Started,
		Running:   r.running,
		Counts:    r.cp.Counts,
		Failures:  r.cp.Failures,
		StartedAt: r.cp.StartedAt,
		EndedAt:   r.endedAt,
		Runs:      r.cp.Runs,
	}
}
