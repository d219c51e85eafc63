package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// rollBack, when the spec asks for it, pushes the previous image to every
// device this rollout updated, as a phase of its own. The rollback is a
// FirmwareRollout of its own (ID "<id>-rollback", child workflows
// "<id>-rollback/<device>"), with the same push and verify guarantees; it
// finds the devices from the results their DeviceUpdates recorded.
func (r *rollout) rollBack() error {
	rb := r.spec.Rollback
	updated := r.cp.Counts.Succeeded
	if rb == nil || !rb.OnAbort || updated == 0 {
		return nil
	}
	r.step = stepRollback
	r.cp.Phases = append(r.cp.Phases, PhaseReport{Name: "rollback", Devices: updated, State: PhaseRunning})
	r.cp.Phase = len(r.cp.Phases) - 1
	r.refreshStatus()

	spec := r.spec.RollbackSpec(r.cp.Counts.Succeeded + r.cp.Counts.AlreadyCurrent)
	ctx := workflow.WithChildOptions(r.childCtx, workflow.ChildWorkflowOptions{
		WorkflowID:            spec.ID,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation:   true,
	})
	var result Report
	err := workflow.ExecuteChildWorkflow(ctx, FirmwareRolloutWorkflow, spec, (*Checkpoint)(nil)).Get(r.loopCtx, &result)
	phase := &r.cp.Phases[r.cp.Phase]
	phase.Started, phase.Counts = result.Started, result.Counts
	switch {
	case temporal.IsCanceledError(err):
		phase.State = PhaseHalted
		r.reason += "; rollback cancelled"
	case err != nil:
		phase.State = PhaseHalted
		r.reason += "; rollback failed: " + reasonOf(err)
	default:
		phase.State = PhasePassed
		if result.Status != StatusCompleted {
			phase.State = PhaseHalted
		}
		r.reason += fmt.Sprintf("; rolled back %d of %d updated devices to %s (%s)",
			result.Counts.Succeeded+result.Counts.AlreadyCurrent, updated, rb.Firmware.Version, spec.ID)
	}
	return nil
}

// RollbackSpec is the spec of this rollout's rollback: the previous image,
// to the devices this rollout updated, with the same device policy.
func (s Spec) RollbackSpec(completed int) Spec {
	return Spec{
		ID:               RollbackID(s.ID),
		Firmware:         s.Rollback.Firmware,
		MaxConcurrent:    s.MaxConcurrent,
		Device:           s.Device,
		MaxHistoryEvents: s.MaxHistoryEvents,
		RollbackOf:       s.ID,
		RollbackExpect:   completed,
	}
}
