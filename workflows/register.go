package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register adds the workflows to a worker under their product names.
func Register(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(FirmwareRollout, workflow.RegisterOptions{Name: FirmwareRolloutWorkflow})
	w.RegisterWorkflowWithOptions(DeviceUpdate, workflow.RegisterOptions{Name: DeviceUpdateWorkflow})
	w.RegisterWorkflowWithOptions(DevicePresence, workflow.RegisterOptions{Name: DevicePresenceWorkflow})
}
