// Package checkin delivers device check-ins to the rollouts waiting for
// those devices: over HTTP (devices call the worker) and from the starter.
package checkin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"go.temporal.io/sdk/client"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Send signals a device's check-in to its presence workflow, starting that
// workflow if it is not running: a check-in is never lost, and reaches
// every DeviceUpdate waiting for the device.
func Send(ctx context.Context, cl client.Client, taskQueue, deviceID string) error {
	if deviceID == "" || len(deviceID) > 256 {
		return fmt.Errorf("device ID must be 1-256 characters, got %d", len(deviceID))
	}
	_, err := cl.SignalWithStartWorkflow(ctx, workflows.PresenceWorkflowID(deviceID), workflows.CheckinSignal, nil,
		client.StartWorkflowOptions{ID: workflows.PresenceWorkflowID(deviceID), TaskQueue: taskQueue},
		workflows.DevicePresenceWorkflow, deviceID, (*workflows.PresenceState)(nil))
	return err
}

// Handler serves POST /checkin/{deviceID}: 202 once the check-in is
// recorded in Temporal, 400 for a bad device ID, 503 when Temporal cannot
// take it (the device should call again).
func Handler(cl client.Client, taskQueue string, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /checkin/{deviceID}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("deviceID")
		err := Send(r.Context(), cl, taskQueue, id)
		switch {
		case err == nil:
			logger.Info("device checked in", "DeviceID", id)
			w.WriteHeader(http.StatusAccepted)
		case id == "" || len(id) > 256:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			logger.Warn("check-in not recorded", "DeviceID", id, "error", err)
			http.Error(w, "check-in not recorded, call again", http.StatusServiceUnavailable)
		}
	})
	return mux
}
