package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// CancelRequest is the cancel update's argument. Without Force, running
// device updates finish; with it, in-flight pushes are cancelled too.
type CancelRequest struct {
	Force bool `json:"force,omitempty"`
}

// registerHandlers wires the progress query and the pause, resume and
// cancel updates. Updates (not signals) so that the caller learns whether
// the rollout took the command; validators refuse what does not apply.
func (r *rollout) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Report, error) {
		return r.report(), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, PauseUpdate,
		func(ctx workflow.Context) (Report, error) {
			r.cp.Paused = true
			r.setStatus(StatusPaused)
			return r.report(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func() error {
			if err := r.refuseIfStopping(); err != nil {
				return err
			}
			if r.cp.Paused {
				return fmt.Errorf("rollout %s is already paused", r.spec.ID)
			}
			return nil
		}},
	); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ResumeUpdate,
		func(ctx workflow.Context) (Report, error) {
			r.cp.Paused = false
			r.setStatus(StatusRunning)
			return r.report(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func() error {
			if err := r.refuseIfStopping(); err != nil {
				return err
			}
			if !r.cp.Paused {
				return fmt.Errorf("rollout %s is not paused", r.spec.ID)
			}
			return nil
		}},
	); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate,
		func(ctx workflow.Context, req CancelRequest) (Report, error) {
			r.requestCancel(req.Force)
			return r.report(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req CancelRequest) error {
			if r.status.Ended() {
				return fmt.Errorf("rollout %s has already ended (%s)", r.spec.ID, r.status)
			}
			if r.cancelRequested && !req.Force {
				return fmt.Errorf("rollout %s is already cancelling; use --force to also cancel in-flight pushes", r.spec.ID)
			}
			return nil
		}},
	)
}

func (r *rollout) refuseIfStopping() error {
	if r.status.Ended() {
		return fmt.Errorf("rollout %s has already ended (%s)", r.spec.ID, r.status)
	}
	if r.cancelRequested {
		return errors.New("rollout " + r.spec.ID + " is being cancelled")
	}
	return nil
}

// setStatus records the status and mirrors it in the RolloutStatus search
// attribute, so the Web UI and `starter list` can filter on it.
func (r *rollout) setStatus(s Status) {
	r.status = s
	_ = workflow.UpsertTypedSearchAttributes(r.loopCtx,
		RolloutIDAttr.ValueSet(r.spec.ID),
		FirmwareVersionAttr.ValueSet(r.spec.Firmware.Version),
		RolloutStatusAttr.ValueSet(string(s)),
	)
}
