package workflows

import (
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

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
		WorkflowID:            spec.ID + "/" + deviceID,
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
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}
