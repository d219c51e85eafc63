// Package activities holds the rollout's I/O: reading the inventory,
// streaming firmware to devices and confirming their version.
package activities

import (
	"net/http"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Activities share one HTTP client per worker, so connections to devices
// and to the firmware server are pooled and kept alive across activities.
type Activities struct {
	Client *http.Client
	// DeviceToken, when set, is sent as "Authorization: Bearer" to devices.
	// It comes from the worker's environment and never enters a workflow.
	DeviceToken string
	// Temporal lets WatchDevice signal a device's presence workflow, and a
	// rollback read which devices the rolled-back rollout updated.
	Temporal client.Client

	updated  updatedCache
	shutdown shutdown
}

// Register adds the activities to a worker under their product names.
func (a *Activities) Register(w worker.ActivityRegistry) {
	w.RegisterActivityWithOptions(a.ListTargets, activity.RegisterOptions{Name: workflows.ListTargetsActivity})
	w.RegisterActivityWithOptions(a.PushFirmware, activity.RegisterOptions{Name: workflows.PushFirmwareActivity})
	w.RegisterActivityWithOptions(a.VerifyVersion, activity.RegisterOptions{Name: workflows.VerifyVersionActivity})
	w.RegisterActivityWithOptions(a.WatchDevice, activity.RegisterOptions{Name: workflows.WatchDeviceActivity})
}
