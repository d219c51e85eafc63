package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// CancelRequest is the cancel update's argument. Without Force, running
// device updates finish; with it, in-flight pushes are cancelled too.
type CancelRequest struct {
	Force bool `json:"force,omitempty"`
}

// registerHandlers wires the progress query and the pause, resume, cancel
// and approve updates. Updates (not signals) so that the caller learns
// whether the rollout took the command; validators refuse what does not
// apply, and every control works in every state until the rollout ends.
func (r *rollout) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Report, error) {
		return r.report(), nil
	}); err != nil {
		return err
	}
	handlers := []struct {
		name     string
		handler  any
		validate any
	}{
		{PauseUpdate, func(workflow.Context) (Report, error) {
			r.cp.Paused = true
			return r.acknowledge()
		}, func() error {
			if err := r.refuseIfStopping(); err != nil {
				return err
			}
			if r.cp.Paused {
				return fmt.Errorf("rollout %s is already paused", r.spec.ID)
			}
			return nil
		}},
		{ResumeUpdate, func(workflow.Context) (Report, error) {
			r.cp.Paused = false
			if r.step == stepHalted {
				r.overridden = true
				r.step = stepDevices // what the acknowledgement shows; the loop moves on
			}
			return r.acknowledge()
		}, func() error {
			if err := r.refuseIfStopping(); err != nil {
				return err
			}
			if !r.cp.Paused && r.step != stepHalted {
				return fmt.Errorf("rollout %s is neither paused nor halted (it is %s)", r.spec.ID, r.status())
			}
			return nil
		}},
		{ApproveUpdate, func(workflow.Context) (Report, error) {
			r.approved = true
			r.step = stepDevices
			return r.acknowledge()
		}, func() error {
			if err := r.refuseIfStopping(); err != nil {
				return err
			}
			if r.step != stepApproval {
				return fmt.Errorf("rollout %s is not awaiting approval (it is %s)", r.spec.ID, r.status())
			}
			return nil
		}},
		{CancelUpdate, func(_ workflow.Context, req CancelRequest) (Report, error) {
			r.requestCancel(req.Force)
			return r.report(), nil
		}, func(req CancelRequest) error {
			if r.ended != "" {
				return fmt.Errorf("rollout %s has already ended (%s)", r.spec.ID, r.ended)
			}
			if r.cancelRequested && !req.Force {
				return fmt.Errorf("rollout %s is already cancelling; use --force to also cancel in-flight pushes", r.spec.ID)
			}
			if r.aborted && !req.Force {
				return fmt.Errorf("rollout %s was aborted and starts no device; use --force to also cancel in-flight pushes", r.spec.ID)
			}
			return nil
		}},
	}
	for _, h := range handlers {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name, h.handler,
			workflow.UpdateHandlerOptions{Validator: h.validate}); err != nil {
			return err
		}
	}
	return nil
}

func (r *rollout) acknowledge() (Report, error) {
	r.refreshStatus()
	return r.report(), nil
}

func (r *rollout) refuseIfStopping() error {
	switch {
	case r.ended != "":
		return fmt.Errorf("rollout %s has already ended (%s)", r.spec.ID, r.ended)
	case r.cancelRequested:
		return fmt.Errorf("rollout %s is being cancelled", r.spec.ID)
	case r.aborted:
		return fmt.Errorf("rollout %s was aborted: %s", r.spec.ID, r.reason)
	}
	return nil
}

func (r *rollout) requestCancel(force bool) {
	if r.ended != "" {
		return
	}
	r.cancelRequested = true
	if force {
		r.cancelChildren()
	}
	r.refreshStatus()
}

// status derives the rollout's state from what it is doing; the most
// pressing condition wins.
func (r *rollout) status() Status {
	switch {
	case r.ended != "":
		return r.ended
	case r.cancelRequested:
		return StatusCancelling
	case r.step == stepRollback:
		return StatusRollingBack
	case r.aborted:
		return StatusAborted
	case r.cp.Paused:
		return StatusPaused
	case r.step == stepHalted:
		return StatusHalted
	case r.step == stepApproval:
		return StatusAwaitingApproval
	case r.step == stepSoak:
		return StatusSoaking
	case r.step == stepScheduled:
		return StatusScheduled
	case !r.windowOpen:
		return StatusWaitingWindow
	}
	return StatusRunning
}

// refreshStatus mirrors a changed status into the RolloutStatus search
// attribute, so the Web UI and `starter list` can filter on it.
func (r *rollout) refreshStatus() {
	s := r.status()
	if s == r.upserted {
		return
	}
	r.upserted = s
	_ = workflow.UpsertTypedSearchAttributes(r.loopCtx,
		RolloutIDAttr.ValueSet(r.spec.ID),
		FirmwareVersionAttr.ValueSet(r.spec.Firmware.Version),
		RolloutStatusAttr.ValueSet(string(s)),
	)
}
