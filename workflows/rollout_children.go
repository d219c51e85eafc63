package workflows

import (
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// continueAsNewEvents is the history length after which a run stops
// starting devices and continues as new; the children still running add
// a few events each while they finish. Tests lower it.
var continueAsNewEvents = 7000

// historyFull: this run should hand over to a new one. The budget shrinks
// with the window so that draining it stays far below Temporal's 10,240
// event warning.
func (r *rollout) historyFull() bool {
	info := workflow.GetInfo(r.loopCtx)
	budget := max(continueAsNewEvents/5, continueAsNewEvents-4*r.spec.Concurrency())
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
