package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// errWorkerShutdown is the type of the error a push cut by its worker's
// shutdown fails with. It is retryable: the server schedules the next
// attempt at once (after the retry policy's interval), on another worker,
// which resumes the upload from what the device holds.
const errWorkerShutdown = "WorkerShutdown"

// errGraceOver is the cause a push's upload is cancelled with when the
// worker's shutdown grace runs out.
var errGraceOver = errors.New("the worker is shutting down and its grace period ran out")

// shutdown is when running pushes must stop: never, until BeginShutdown.
type shutdown struct {
	once      sync.Once
	graceOver context.Context
	cut       context.CancelFunc
}

func (s *shutdown) init() {
	s.once.Do(func() { s.graceOver, s.cut = context.WithCancel(context.Background()) })
}

// BeginShutdown gives running pushes grace to finish. Those still
// uploading when it runs out are cut, record how far they got in their
// heartbeat and fail with a retryable WorkerShutdown error, so that the
// server retries them promptly rather than after a heartbeat timeout.
//
// The worker calls it when it is told to stop, before stopping the SDK
// worker: the SDK tells activities only when its activity worker stops,
// after its workflow worker (and any local activity) has, and cancels
// them only when it gives up waiting, without waiting for their answer.
func (a *Activities) BeginShutdown(grace time.Duration) {
	a.shutdown.init()
	time.AfterFunc(grace, a.shutdown.cut)
}

// graceOver is done when the worker's shutdown grace has run out.
func (a *Activities) graceOver() context.Context {
	a.shutdown.init()
	return a.shutdown.graceOver
}

// cutAtGraceOver cancels an upload with errGraceOver when the shutdown
// grace runs out; stop releases it.
func (a *Activities) cutAtGraceOver(cancelUpload context.CancelCauseFunc) (stop func() bool) {
	return context.AfterFunc(a.graceOver(), func() { cancelUpload(errGraceOver) })
}

// cutByShutdown says whether an upload was cancelled by the worker's
// shutdown: at the end of its grace, or by the SDK giving up waiting.
func cutByShutdown(uploadCtx context.Context) bool {
	cause := context.Cause(uploadCtx)
	return errors.Is(cause, errGraceOver) || errors.Is(cause, worker.ErrWorkerShutdown)
}

// shutdownError records, as the push's final heartbeat, how far an upload
// cut by the shutdown got, and fails the attempt retryably. The next
// attempt asks the device how much it holds and resumes from there.
func shutdownError(ctx context.Context, progress pushProgress, sent int64) error {
	progress.BytesSent = sent
	activity.RecordHeartbeat(ctx, progress)
	return transientOfType(ctx, errWorkerShutdown, fmt.Sprintf(
		"push: cut after %d bytes, sent from offset %d: %v; the next attempt resumes the upload",
		sent, progress.ConfirmedOffset, errGraceOver), 0)
}
