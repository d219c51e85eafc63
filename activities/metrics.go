package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Prometheus names of the push and verify metrics (see README, Metrics).
// They go through the SDK's metrics handler, which tags them with the
// activity and workflow types, the task queue and the namespace.
const (
	pushDurationMetric   = "firmware_rollout_push_duration_seconds"
	pushRetriesMetric    = "firmware_rollout_push_retries_total"
	pushBytesMetric      = "firmware_rollout_push_bytes_total"
	resumedUploadsMetric = "firmware_rollout_resumed_uploads_total"
	resumedBytesMetric   = "firmware_rollout_resumed_bytes_total"
	verifyDurationMetric = "firmware_rollout_verify_duration_seconds"
)

// observePush records one PushFirmware attempt when it ends: its duration
// by how it ended, and whether it was a retry. An attempt that panics is
// not recorded: the SDK reports it as a failed activity.
func observePush(ctx context.Context, began time.Time, result workflows.PushResult, err error) {
	metrics := activity.GetMetricsHandler(ctx)
	ended := "accepted"
	switch {
	case err != nil:
		ended = errorLabel(ctx, err)
	case result.AlreadyInstalled:
		ended = "already_installed"
	}
	metrics.WithTags(map[string]string{"result": ended}).Timer(pushDurationMetric).Record(time.Since(began))
	if activity.GetInfo(ctx).Attempt > 1 {
		metrics.Counter(pushRetriesMetric).Inc(1)
	}
}

// observeVerify records one VerifyVersion attempt's duration by how it
// ended.
func observeVerify(ctx context.Context, began time.Time, err error) {
	ended := "confirmed"
	if err != nil {
		ended = errorLabel(ctx, err)
	}
	activity.GetMetricsHandler(ctx).WithTags(map[string]string{"result": ended}).
		Timer(verifyDurationMetric).Record(time.Since(began))
}

// errorLabel sorts an attempt's error into the few kinds the duration
// histograms are labelled with.
func errorLabel(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timed_out"
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return "cancelled"
	case isPermanent(err):
		return "permanent_error"
	}
	return "retryable_error"
}

// countSent adds the bytes an upload sent, whether or not the device took
// them, to the bytes pushed.
func countSent(ctx context.Context, body *digestReader) {
	activity.GetMetricsHandler(ctx).Counter(pushBytesMetric).Inc(body.sent.Load())
}

// countResumed counts an upload that resumes where the device stands, and
// the bytes it does not send again.
func countResumed(ctx context.Context, offset int64) {
	metrics := activity.GetMetricsHandler(ctx)
	metrics.Counter(resumedUploadsMetric).Inc(1)
	metrics.Counter(resumedBytesMetric).Inc(offset)
}
