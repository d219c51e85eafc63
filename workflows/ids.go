package workflows

import "strings"

// DeviceUpdateID is the workflow ID of a device's update in a rollout.
// Rollout IDs cannot contain '/', so the first '/' splits it again.
func DeviceUpdateID(rolloutID, deviceID string) string { return rolloutID + "/" + deviceID }

// presencePrefix starts the ID of every presence workflow.
const presencePrefix = "presence/"

// PresenceWorkflowID is the ID of a device's presence workflow.
func PresenceWorkflowID(deviceID string) string { return presencePrefix + deviceID }

// IDsOf tells which rollout and device a workflow of this product works
// for, from its ID: a FirmwareRollout's is the rollout ID, a DeviceUpdate's
// "<rolloutID>/<deviceID>", a DevicePresence's "presence/<deviceID>".
func IDsOf(workflowID string) (rolloutID, deviceID string) {
	if device, ok := strings.CutPrefix(workflowID, presencePrefix); ok {
		return "", device
	}
	rolloutID, deviceID, _ = strings.Cut(workflowID, "/")
	return rolloutID, deviceID
}
