package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Prometheus names of the device outcome counters (see README, Metrics).
const (
	devicesMetric        = "firmware_rollout_devices_total"
	deviceFailuresMetric = "firmware_rollout_device_failures_total"
)

// Outcome label values: Prometheus label values are kept to [a-zA-Z0-9_].
var outcomeLabels = map[string]string{
	OutcomeUpdated:        "updated",
	OutcomeAlreadyCurrent: "already_current",
	OutcomeFailed:         "failed",
	OutcomeCancelled:      "cancelled",
}

// reportOutcome counts and logs how a device's update ended. DeviceUpdate's
// result is the one place where a device's outcome is final: its
// activities may run several attempts, and local ones run again after a
// lost workflow task. The workflow's metrics handler and logger are silent
// while it replays, so a device is counted when its update ends, not again
// when a worker replays its history.
func reportOutcome(ctx workflow.Context, result DeviceResult, err error) {
	outcome := result.Outcome
	switch {
	case temporal.IsCanceledError(err):
		outcome = OutcomeCancelled
	case err != nil:
		outcome = OutcomeFailed
	}
	metrics := workflow.GetMetricsHandler(ctx)
	metrics.WithTags(map[string]string{"outcome": outcomeLabels[outcome]}).Counter(devicesMetric).Inc(1)
	logger := workflow.GetLogger(ctx)
	if outcome != OutcomeFailed {
		logger.Info("device update ended", "Outcome", outcome, "PreviousVersion", result.PreviousVersion)
		return
	}
	errType := errorTypeOf(err)
	if errType == "" {
		errType = "Unknown"
	}
	metrics.WithTags(map[string]string{"error_type": errType}).Counter(deviceFailuresMetric).Inc(1)
	logger.Warn("device update failed", "Outcome", outcome, "ErrorType", errType, "Reason", reasonOf(err))
}
