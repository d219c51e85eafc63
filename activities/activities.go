// Package activities holds the rollout's I/O: reading the inventory,
// streaming firmware to devices and confirming their version.
package activities

import (
	"net/http"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Activities share one HTTP client per worker, so connections to devices
// and to the firmware server are pooled and kept alive across activities.
type Activities struct {
	// Client talks to devices (NewHTTPClient).
	Client *http.Client
	// Sources, when set, fetches firmware images and inventories
	// (NewSourceClient): their servers may need other CAs than the
	// devices. When nil, Client's connections do.
	Sources *http.Client
	// DeviceToken, when set, is sent as "Authorization: Bearer" to devices.
	// It comes from the worker's environment and never enters a workflow.
	DeviceToken string
	// FirmwareKeys, when set, are the public keys a firmware signature
	// must verify with; then only signed images are pushed (signature.go).
	FirmwareKeys signing.Keys
	// Temporal lets WatchDevice signal a device's presence workflow, and a
	// rollback read which devices the rolled-back rollout updated.
	Temporal client.Client
	// Payloads decodes the histories a rollback reads, with the client's
	// codec when payloads are encrypted; nil is the SDK's default.
	Payloads converter.DataConverter

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

// sources is the client for firmware and inventory servers.
func (a *Activities) sources() *http.Client {
	if a.Sources != nil {
		return a.Sources
	}
	return a.Client
}
