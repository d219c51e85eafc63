// Package telemetry builds the worker's logs and metrics: slog lines that
// name the rollout and the device they are about, and Prometheus metrics
// from the Temporal SDK and from the product's activities and workflows.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
)

// NewLogger writes lines in format (text or json) at level and above
// (debug, info, warn or error), with RolloutID and DeviceID on every line
// about a rollout's workflows and activities.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var threshold slog.Level
	if err := threshold.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: threshold}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
	return slog.New(newDeviceFields(h)), nil
}
