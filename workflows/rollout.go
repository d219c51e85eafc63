package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Checkpoint carries a rollout across continue-as-new. It is bounded
// whatever the fleet size: a cursor, counters, the phases and the first
// failures.
type Checkpoint struct {
	Cursor      string          `json:"cursor,omitempty"` // OrderKey of the last device started
	Exhausted   bool            `json:"exhausted,omitempty"`
	Selected    int             `json:"selected"`
	Started     int             `json:"started"`
	Counts      Counts          `json:"counts"`
	Failures    []DeviceFailure `json:"failures,omitempty"`
	Offline     int             `json:"offline,omitempty"`
	OfflineIDs  []OfflineDevice `json:"offlineDevices,omitempty"`
	Phase       int             `json:"phase"`
	Phases      []PhaseReport   `json:"phases,omitempty"`
	Paused      bool            `json:"paused,omitempty"`
	NextStartAt time.Time       `json:"nextStartAt,omitzero"` // rate limit: no device starts before
	StartedAt   time.Time       `json:"startedAt"`
	Runs        int             `json:"runs"`
}

// FirmwareRollout pushes one firmware image to the selected devices, phase
// by phase. Within a phase it pages through the inventory in OrderKey
// order and keeps up to maxConcurrent DeviceUpdate children running (a
// sliding window), inside the maintenance window and the rate limit.
// Between phases it checks the gate, soaks and waits for approval. It
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

// step is where the rollout is in its phase sequence.
type step int

const (
	stepScheduled step = iota
	stepApproval
	stepDevices
	stepHalted
	stepSoak
	stepRollback
	stepEnded
)

// rollout is the state of one workflow run.
type rollout struct {
	spec Spec
	cp   Checkpoint

	step     step
	ended    Status // set once the rollout is over
	reason   string
	endedAt  time.Time
	upserted Status // RolloutStatus as last written to the search attributes

	running int
	pending []Target // fetched in order, not yet started

	cancelRequested bool
	aborted         bool
	overridden      bool // the operator resumed the halted rollout
	approved        bool // the operator approved the phase awaiting approval
	fatal           error
	draining        bool // letting children finish before continue-as-new

	windowOpen bool
	nextWindow time.Time
	rateReady  bool

	// Children run under their own context so that cancelling the rollout
	// cancels them only when and how the rollout decides.
	childCtx       workflow.Context
	cancelChildren workflow.CancelFunc
	loopCtx        workflow.Context
}

func newRollout(ctx workflow.Context, spec Spec, checkpoint *Checkpoint) *rollout {
	r := &rollout{spec: spec, step: stepDevices, windowOpen: true, rateReady: true}
	if checkpoint != nil {
		r.cp = *checkpoint
	} else {
		r.cp.StartedAt = workflow.Now(ctx)
	}
	r.cp.Runs++
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
	if r.cp.Runs == 1 {
		if err := r.begin(); err != nil {
			return r.report(), err
		}
	}
	if len(r.cp.Phases) == 0 { // a checkpoint from before phases existed
		r.planPhases()
	}
	r.keepWindow()
	r.keepRate()
	r.refreshStatus()

	phases, _ := r.spec.PhasePlan(r.cp.Selected)
	for r.cp.Phase < len(phases) && !r.stopping() {
		phase := phases[r.cp.Phase]
		if err := r.awaitApproval(phase); err != nil {
			return r.report(), err
		}
		if r.stopping() {
			break
		}
		r.setPhaseState(PhaseRunning)
		if err := r.runDevices(); err != nil {
			return r.report(), err
		}
		if r.needsContinueAsNew() {
			return r.continueAsNew(ctx)
		}
		if r.stopping() {
			break
		}
		last := r.cp.Phase == len(phases)-1
		if err := r.checkGate(phase); err != nil {
			return r.report(), err
		}
		// The soak shows as the phase's state; an overridden gate is what
		// the phase ends with.
		overridden := r.cp.Phases[r.cp.Phase].State == PhaseOverridden
		if !last {
			if err := r.soak(phase); err != nil {
				return r.report(), err
			}
		}
		if r.stopping() {
			break
		}
		if !last {
			if err := r.awaitUnpaused(); err != nil {
				return r.report(), err
			}
		}
		if overridden {
			r.setPhaseState(PhaseOverridden)
		} else {
			r.setPhaseState(PhasePassed)
		}
		r.cp.Phase++
	}
	return r.end()
}

// begin waits for startAt, reads the first page and plans the phases.
func (r *rollout) begin() error {
	if r.spec.StartAt != "" {
		at, _ := time.Parse(time.RFC3339, r.spec.StartAt)
		if wait := at.Sub(workflow.Now(r.loopCtx)); wait > 0 {
			r.step = stepScheduled
			r.refreshStatus()
			if _, err := workflow.AwaitWithTimeout(r.loopCtx, wait, r.stopping); err != nil {
				return err
			}
		}
	}
	if r.stopping() {
		return nil
	}
	if err := r.fetch(); err != nil {
		return err
	}
	if r.cp.Selected == 0 {
		return temporal.NewNonRetryableApplicationError("the selector matched no devices in the inventory", ErrEmptySelection, nil)
	}
	r.planPhases()
	return nil
}

// planPhases fixes how many devices each phase takes, from the number
// selected when the rollout began.
func (r *rollout) planPhases() {
	phases, ends := r.spec.PhasePlan(r.cp.Selected)
	prev := 0
	for i, p := range phases {
		r.cp.Phases = append(r.cp.Phases, PhaseReport{Name: p.Name, Devices: ends[i] - prev, State: PhasePending})
		prev = ends[i]
	}
}

// phaseEnd is the number of devices started once the current phase has
// started all of its own.
func (r *rollout) phaseEnd() int {
	end := 0
	for _, p := range r.cp.Phases[:r.cp.Phase+1] {
		end += p.Devices
	}
	return end
}

// stopping: no device will start again in this rollout.
func (r *rollout) stopping() bool { return r.cancelRequested || r.aborted || r.fatal != nil }

func (r *rollout) needsContinueAsNew() bool {
	return r.draining && !r.stopping() && r.cp.Started < r.phaseEnd() && !r.exhausted()
}

func (r *rollout) continueAsNew(ctx workflow.Context) (Report, error) {
	if err := workflow.Await(r.loopCtx, func() bool { return workflow.AllHandlersFinished(r.loopCtx) }); err != nil {
		return r.report(), err
	}
	// Targets fetched but not started are not in the checkpoint: the next
	// run fetches them again after the cursor, so the inventory is not
	// exhausted for it even if this run read its last page.
	r.cp.Exhausted = false
	return Report{}, workflow.NewContinueAsNewError(ctx, FirmwareRolloutWorkflow, r.spec, &r.cp)
}

// end waits for running devices and settles the outcome.
func (r *rollout) end() (Report, error) {
	if err := workflow.Await(r.loopCtx, func() bool {
		return r.running == 0 && workflow.AllHandlersFinished(r.loopCtx)
	}); err != nil {
		return r.report(), err
	}
	if r.fatal != nil {
		return r.report(), r.fatal
	}
	switch {
	case r.aborted:
		r.cancelNotStarted()
		if err := r.rollBack(); err != nil {
			return r.report(), err
		}
		r.finish(StatusAborted, r.reason)
	case r.cancelRequested:
		r.cancelNotStarted()
		r.finish(StatusCancelled, "cancelled by the operator")
	case r.cp.Counts.Failed > 0:
		r.finish(StatusCompletedWithFailures, fmt.Sprintf("%d of %d devices failed", r.cp.Counts.Failed, r.cp.Counts.Done()))
	default:
		r.finish(StatusCompleted, "")
	}
	return r.report(), nil
}

// cancelNotStarted gives the devices that never started their outcome:
// cancelled, in the totals and in their phases.
func (r *rollout) cancelNotStarted() {
	r.cp.Counts.Cancelled += max(0, r.cp.Selected-r.cp.Started)
	for i := range r.cp.Phases {
		p := &r.cp.Phases[i]
		p.Counts.Cancelled += max(0, p.Devices-p.Started)
	}
}

func (r *rollout) finish(status Status, reason string) {
	r.step = stepEnded
	r.ended = status
	r.reason = reason
	r.endedAt = workflow.Now(r.loopCtx)
	r.refreshStatus()
}

func (r *rollout) setPhaseState(state string) {
	if r.cp.Phase < len(r.cp.Phases) {
		r.cp.Phases[r.cp.Phase].State = state
	}
}

func (r *rollout) report() Report {
	rep := Report{
		RolloutID:  r.spec.ID,
		Version:    r.spec.Firmware.Version,
		Status:     r.status(),
		Reason:     r.reason,
		Selected:   r.cp.Selected,
		Started:    r.cp.Started,
		Running:    r.running,
		Counts:     r.cp.Counts,
		Phase:      min(r.cp.Phase, max(0, len(r.cp.Phases)-1)),
		Phases:     r.cp.Phases,
		Failures:   r.cp.Failures,
		Offline:    r.cp.Offline,
		OfflineIDs: r.cp.OfflineIDs,
		StartedAt:  r.cp.StartedAt,
		EndedAt:    r.endedAt,
		Runs:       r.cp.Runs,
	}
	if !r.windowOpen {
		rep.NextWindow = r.nextWindow
	}
	return rep
}
