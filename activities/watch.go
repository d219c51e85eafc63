package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// WatchDevice asks the device's presence workflow (started if need be) to
// signal the watching DeviceUpdate at the device's next check-in.
func (a *Activities) WatchDevice(ctx context.Context, w workflows.Watch) error {
	if a.Temporal == nil {
		return errors.New("watch device: this worker has no Temporal client")
	}
	_, err := a.Temporal.SignalWithStartWorkflow(ctx, workflows.PresenceWorkflowID(w.DeviceID), workflows.WatchSignal, w,
		client.StartWorkflowOptions{
			ID:        workflows.PresenceWorkflowID(w.DeviceID),
			TaskQueue: activity.GetInfo(ctx).TaskQueue,
		},
		workflows.DevicePresenceWorkflow, w.DeviceID, (*workflows.PresenceState)(nil))
	return err
}
