package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Every wait below is a Temporal timer or condition: a 24-hour soak or a
// week until the next window survives any restart.

// awaitApproval holds a phase that requires approval until `approve`,
// cancel or, with approvalTimeout, a halt.
func (r *rollout) awaitApproval(phase Phase) error {
	state := &r.cp.Phases[r.cp.Phase]
	if !phase.RequireApproval || state.Approved {
		return nil
	}
	r.step = stepApproval
	state.State = PhaseAwaitingApproval
	r.approved = false
	r.refreshStatus()
	done := func() bool { return r.approved || r.stopping() }
	if phase.ApprovalTimeout == "" {
		if err := workflow.Await(r.loopCtx, done); err != nil {
			return err
		}
	} else {
		timeout, _ := time.ParseDuration(phase.ApprovalTimeout)
		ok, err := workflow.AwaitWithTimeout(r.loopCtx, timeout, done)
		if err != nil {
			return err
		}
		if !ok {
			return r.halt(fmt.Sprintf("phase %s was not approved within %s", phase.Name, phase.ApprovalTimeout))
		}
	}
	state.Approved = !r.stopping()
	return nil
}

// checkGate halts the rollout when the phase's success rate is below its
// minimum; the operator's resume overrides it.
func (r *rollout) checkGate(phase Phase) error {
	c := r.cp.Phases[r.cp.Phase].Counts
	if phase.MinSuccessPercent == 0 || c.finished() == 0 {
		return nil
	}
	ok := c.Succeeded + c.AlreadyCurrent
	rate := 100 * float64(ok) / float64(c.finished())
	if rate >= phase.MinSuccessPercent {
		return nil
	}
	reason := fmt.Sprintf("phase %s: %d of %d devices succeeded (%.1f%%), below its gate of %g%%",
		phase.Name, ok, c.finished(), rate, phase.MinSuccessPercent)
	if rb := r.spec.Rollback; rb != nil && rb.OnAbort {
		// With a rollback to run, a failed gate aborts instead of halting.
		r.aborted = true
		r.reason = "aborted: " + reason
		r.refreshStatus()
		return nil
	}
	return r.halt(reason)
}

// halt waits for the operator: resume carries on, cancel ends.
func (r *rollout) halt(reason string) error {
	r.step = stepHalted
	r.reason = reason
	r.overridden = false
	r.setPhaseState(PhaseHalted)
	r.refreshStatus()
	if err := workflow.Await(r.loopCtx, func() bool { return r.overridden || r.stopping() }); err != nil {
		return err
	}
	if r.overridden {
		r.setPhaseState(PhaseOverridden)
		r.reason = ""
	}
	return nil
}

// soak waits after a phase before the next one starts.
func (r *rollout) soak(phase Phase) error {
	if phase.Soak == "" || r.stopping() { // a rollout cancelled while halted does not soak
		return nil
	}
	d, _ := time.ParseDuration(phase.Soak)
	r.step = stepSoak
	r.setPhaseState(PhaseSoaking)
	r.refreshStatus()
	_, err := workflow.AwaitWithTimeout(r.loopCtx, d, r.stopping)
	return err
}

// awaitUnpaused holds the next phase while the rollout is paused.
func (r *rollout) awaitUnpaused() error {
	return workflow.Await(r.loopCtx, func() bool { return !r.cp.Paused || r.stopping() })
}

// checkAbort stops the rollout once too many finished devices failed.
// Counts are exact (one outcome per device), so the threshold is too.
func (r *rollout) checkAbort() {
	a := r.spec.Abort
	if a == nil || r.aborted || r.cancelRequested {
		return
	}
	c := r.cp.Counts
	if c.finished() < a.MinFinished() || 100*float64(c.Failed) <= a.MaxFailurePercent*float64(c.finished()) {
		return
	}
	r.aborted = true
	r.reason = fmt.Sprintf("aborted: %d of %d finished devices failed (%.1f%%), above abort.maxFailurePercent %g%%",
		c.Failed, c.finished(), 100*float64(c.Failed)/float64(c.finished()), a.MaxFailurePercent)
	r.refreshStatus()
}

// keepWindow keeps windowOpen and nextWindow up to date with a timer at
// every opening and closing of the maintenance window.
func (r *rollout) keepWindow() {
	if r.spec.Window == nil {
		return
	}
	schedule, _ := r.spec.Window.schedule()
	// The first state is set before any device can start; the coroutine
	// then follows the window's openings and closings.
	update := func(now time.Time) time.Duration {
		open, change := schedule.at(now)
		r.windowOpen, r.nextWindow = open, change
		r.refreshStatus()
		return change.Sub(now)
	}
	wait := update(workflow.Now(r.loopCtx))
	workflow.Go(r.loopCtx, func(ctx workflow.Context) {
		for {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return
			}
			wait = update(workflow.Now(ctx))
		}
	})
}

// keepRate holds the first start of a continued run until the rate limit
// of the previous run allows it.
func (r *rollout) keepRate() {
	if wait := r.cp.NextStartAt.Sub(workflow.Now(r.loopCtx)); r.spec.Rate != nil && wait > 0 {
		r.rateReady = false
		workflow.Go(r.loopCtx, func(ctx workflow.Context) {
			_ = workflow.Sleep(ctx, wait)
			r.rateReady = true
		})
	}
}

// limitRate spaces device starts to the rate cap in force after the
// successes so far; the next start waits for a timer.
func (r *rollout) limitRate() {
	rate := r.spec.Rate
	if rate == nil {
		return
	}
	c := r.cp.Counts
	interval := time.Duration(float64(time.Minute) / rate.perMinuteAfter(c.Succeeded+c.AlreadyCurrent))
	now := workflow.Now(r.loopCtx)
	if r.cp.NextStartAt.Before(now) {
		r.cp.NextStartAt = now
	}
	r.cp.NextStartAt = r.cp.NextStartAt.Add(interval)
	r.rateReady = false
	wait := r.cp.NextStartAt.Sub(now)
	workflow.Go(r.loopCtx, func(ctx workflow.Context) {
		_ = workflow.Sleep(ctx, wait)
		r.rateReady = true
	})
}
