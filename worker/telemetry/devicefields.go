package telemetry

import (
	"context"
	"log/slog"
	"slices"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Keys of the fields every line about a rollout or a device carries.
const (
	RolloutIDKey = "RolloutID"
	DeviceIDKey  = "DeviceID"
)

// Keys the Temporal SDK puts on its lines about a workflow or an activity:
// on the loggers of workflow.GetLogger and activity.GetLogger, and on its
// own lines ("Activity error.", "Failed to process workflow task.").
const (
	workflowIDKey      = "WorkflowID"
	childWorkflowIDKey = "ChildWorkflowID"
)

// deviceFields adds RolloutID and DeviceID to every line that names a
// workflow of this product, derived from its workflow ID
// (workflows.IDsOf). It sits under the SDK's logger rather than in a
// worker interceptor, because an interceptor only reaches the loggers
// that workflow and activity code ask for, not the SDK's own lines about
// a device's failing attempts.
type deviceFields struct {
	next slog.Handler
	// bound holds the IDs the attributes bound with WithAttrs carry.
	bound ids
	// grouped: attributes now land in a group, where the IDs do not belong.
	grouped bool
}

type ids struct{ rollout, device string }

func newDeviceFields(next slog.Handler) slog.Handler { return &deviceFields{next: next} }

func (h *deviceFields) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *deviceFields) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h.grouped {
		return &deviceFields{next: h.next.WithAttrs(attrs), bound: h.bound, grouped: true}
	}
	named, derived := scan(attrs)
	bound := h.bound.or(named)
	add := missing(bound, derived)
	return &deviceFields{next: h.next.WithAttrs(slices.Concat(attrs, add)), bound: bound.or(derived)}
}

func (h *deviceFields) WithGroup(name string) slog.Handler {
	return &deviceFields{next: h.next.WithGroup(name), bound: h.bound, grouped: true}
}

func (h *deviceFields) Handle(ctx context.Context, r slog.Record) error {
	if h.grouped {
		return h.next.Handle(ctx, r)
	}
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	named, derived := scan(attrs)
	add := missing(h.bound.or(named), derived)
	repeated := (named.rollout != "" && h.bound.rollout != "") || (named.device != "" && h.bound.device != "")
	if len(add) == 0 && !repeated {
		return h.next.Handle(ctx, r)
	}
	// Rebuilt, so that a field the bound attributes already carry (an
	// activity naming its DeviceID) is not written twice.
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	for _, a := range attrs {
		if (a.Key == RolloutIDKey && h.bound.rollout != "") || (a.Key == DeviceIDKey && h.bound.device != "") {
			continue
		}
		out.AddAttrs(a)
	}
	out.AddAttrs(add...)
	return h.next.Handle(ctx, out)
}

// scan finds the IDs that attrs name as fields, and those their workflow
// IDs imply. A child's ID (on the parent's lines about it) names the
// device.
func scan(attrs []slog.Attr) (named, derived ids) {
	var child ids
	for _, a := range attrs {
		switch a.Key {
		case RolloutIDKey:
			named.rollout = a.Value.String()
		case DeviceIDKey:
			named.device = a.Value.String()
		case workflowIDKey:
			derived.rollout, derived.device = workflows.IDsOf(a.Value.String())
		case childWorkflowIDKey:
			child.rollout, child.device = workflows.IDsOf(a.Value.String())
		}
	}
	return named, derived.or(child)
}

// or fills what x lacks from y.
func (x ids) or(y ids) ids {
	if x.rollout == "" {
		x.rollout = y.rollout
	}
	if x.device == "" {
		x.device = y.device
	}
	return x
}

// missing is the fields of derived that have not been written.
func missing(written, derived ids) []slog.Attr {
	var add []slog.Attr
	if written.rollout == "" && derived.rollout != "" {
		add = append(add, slog.String(RolloutIDKey, derived.rollout))
	}
	if written.device == "" && derived.device != "" {
		add = append(add, slog.String(DeviceIDKey, derived.device))
	}
	return add
}
