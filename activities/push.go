package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// pushProgress is the push's heartbeat: enough for the next attempt to
// know what the device ran before this rollout touched it, and where the
// upload stood. No secrets.
type pushProgress struct {
	PreviousVersion string `json:"previousVersion,omitempty"`
	Uploading       bool   `json:"uploading"`
	// ConfirmedOffset is where this attempt's upload began: the bytes the
	// device confirmed holding (HEAD /update) when it resumed, else 0.
	ConfirmedOffset int64 `json:"confirmedOffset,omitempty"`
	// BytesSent counts the bytes this attempt sent, after ConfirmedOffset.
	BytesSent int64 `json:"bytesSent"`
}

// PushFirmware asks the device its version, and unless it already runs
// the target, streams the image to POST {address}/update. The image is
// never held in memory; its SHA-256 is checked on the way. A device that
// runs the target version on a retry got it from an earlier attempt whose
// answer was lost (a crashed worker, a dropped connection): it is not
// flashed again. A retry resumes an upload the device holds part of.
func (a *Activities) PushFirmware(ctx context.Context, req workflows.PushRequest) (workflows.PushResult, error) {
	began := time.Now()
	result, err := a.pushFirmware(ctx, req)
	observePush(ctx, began, result, err)
	return result, err
}

// pushFirmware is PushFirmware but for the metrics of the attempt.
func (a *Activities) pushFirmware(ctx context.Context, req workflows.PushRequest) (workflows.PushResult, error) {
	logger := activity.GetLogger(ctx)
	signed, err := a.signatureCheck(req.Firmware)
	if err != nil {
		return workflows.PushResult{}, err
	}
	var earlier pushProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &earlier)
	}

	current, err := a.getVersion(ctx, "probe", req.Address)
	if earlier.Uploading && busyOrAway(current, err) {
		current, err = a.awaitInstall(ctx, req, earlier)
	}
	if err != nil {
		return workflows.PushResult{}, err
	}
	previous := current.Version
	if earlier.PreviousVersion != "" {
		previous = earlier.PreviousVersion
	}
	if current.Version == req.Firmware.Version {
		installedByUs := earlier.Uploading
		logger.Info("device already runs the target version", "DeviceID", req.DeviceID, "ByEarlierAttempt", installedByUs)
		return workflows.PushResult{
			AlreadyInstalled: !installedByUs,
			PreviousVersion:  previous,
		}, nil
	}
	if !current.idle() {
		return workflows.PushResult{}, transient(ctx, "probe: device is busy (state "+current.State+")", 0)
	}

	var offset int64
	if isRetry(ctx, earlier) {
		offset = a.deviceOffset(ctx, req)
		logger.Info("asked the device how much of the image it holds", "DeviceID", req.DeviceID, "Offset", offset,
			"HeartbeatSaid", earlier.ConfirmedOffset+earlier.BytesSent)
	}
	return a.uploadFrom(ctx, req, signed, previous, offset)
}

// upload streams the image to the device from offset, which the device
// confirmed holding (0 for the whole image). An offset the image cannot
// resume from (unknown size, or not short of its end) uploads it whole.
// A signed push checks the signature over the whole image, held prefix
// included.
func (a *Activities) upload(ctx context.Context, req workflows.PushRequest, signed *signatureCheck, previous string, offset int64) (workflows.PushResult, error) {
	logger := activity.GetLogger(ctx)
	image, size, err := a.openImage(ctx, req.Firmware)
	if err != nil {
		return workflows.PushResult{}, err
	}
	defer func() { _ = image.Close() }()
	if offset >= size {
		offset = 0
	}

	// Recorded before the first byte moves, so that a retry after a lost
	// answer knows this rollout may have installed the image.
	progress := pushProgress{PreviousVersion: previous, Uploading: true, ConfirmedOffset: offset}
	activity.RecordHeartbeat(ctx, progress)
	body := newDigestReader(image, req.Firmware.SHA256, size)
	body.signed = signed
	defer countSent(ctx, body)
	uploadCtx, cancelUpload := context.WithCancelCause(ctx)
	defer cancelUpload(nil)
	defer a.cutAtGraceOver(cancelUpload)()
	answered := make(chan struct{})
	go heartbeatUpload(uploadCtx, cancelUpload, body, progress, answered)
	if offset > 0 {
		countResumed(ctx, offset)
		if err := primeWithHeldPrefix(uploadCtx, image, body, offset); err != nil {
			return workflows.PushResult{}, uploadError(ctx, uploadCtx, body, progress, err)
		}
	}

	httpReq, err := http.NewRequestWithContext(uploadCtx, http.MethodPost, req.Address+"/update", io.NopCloser(body))
	if err != nil {
		return workflows.PushResult{}, permanent(workflows.ErrBadDeviceAnswer, "push: bad device address: "+err.Error())
	}
	httpReq.ContentLength = size - offset
	if size == 0 {
		httpReq.Body = http.NoBody
	}
	httpReq.Header.Set("Content-Type", "application/octet-stream")
	a.setImageHeaders(httpReq, req)
	if offset > 0 {
		httpReq.Header.Set(uploadOffsetHeader, strconv.FormatInt(offset, 10))
	}

	resp, err := a.Client.Do(httpReq)
	close(answered)
	if err != nil || body.refused() != nil {
		if resp != nil {
			drainAndClose(resp.Body)
		}
		return workflows.PushResult{}, uploadError(ctx, uploadCtx, body, progress, err)
	}
	defer drainAndClose(resp.Body)

	result := workflows.PushResult{PreviousVersion: previous, BytesSent: body.sent.Load()}
	switch resp.StatusCode {
	case http.StatusAccepted:
		logger.Info("device accepted the image", "DeviceID", req.DeviceID, "Bytes", result.BytesSent, "ResumedAt", offset)
		return result, nil
	case http.StatusOK:
		var answer struct {
			Status string `json:"status"`
		}
		err := decodeAnswer(resp.Body, &answer)
		if answer.Status != "already-installed" {
			return workflows.PushResult{}, permanent(workflows.ErrBadDeviceAnswer,
				fmt.Sprintf("push: device answered 200 with status %q, expected 202 or already-installed%s", answer.Status, tooLargeDetail(err)))
		}
		result.AlreadyInstalled = true
		return result, nil
	default:
		if offset > 0 {
			if refusal := resumeRefused(resp); refusal != nil {
				return workflows.PushResult{}, refusal
			}
		}
		return workflows.PushResult{}, answerError(ctx, "push", resp)
	}
}

// uploadError reports why an upload (or the priming before it) ended
// without an answer: an image that is not the spec's, the worker's
// shutdown, a firmware source that broke off, or the device connection.
func uploadError(ctx, uploadCtx context.Context, body *digestReader, progress pushProgress, err error) error {
	if refusal := body.refused(); refusal != nil {
		return permanent(refusal.errType, "push: "+refusal.why)
	}
	if cutByShutdown(uploadCtx) {
		return shutdownError(ctx, progress, body.sent.Load())
	}
	if why := body.sourceFailed(); why != "" && uploadCtx.Err() == nil {
		// The image broke off, not the device: say so in the reason.
		return transient(ctx, "push: reading the firmware image failed: "+why, 0)
	}
	return networkError(uploadCtx, "push", err)
}

// setImageHeaders names the image and the rollout, on uploads and on
// offset probes alike.
func (a *Activities) setImageHeaders(httpReq *http.Request, req workflows.PushRequest) {
	httpReq.Header.Set("X-Firmware-Version", req.Firmware.Version)
	httpReq.Header.Set("X-Firmware-SHA256", req.Firmware.SHA256)
	httpReq.Header.Set("X-Rollout-ID", req.RolloutID)
	httpReq.Header.Set("X-Device-ID", req.DeviceID)
	if req.Firmware.Signature != "" {
		httpReq.Header.Set(signatureHeader, req.Firmware.Signature)
	}
	a.authorize(httpReq)
}

// errTransferStalled is the cause heartbeatUpload cancels a stalled
// upload with; networkError reports it as a transient device failure.
var errTransferStalled = errors.New("transfer stalled")

// heartbeatUpload reports the bytes sent while they move, and cancels the
// upload when the image stops moving for a heartbeat timeout: a stalled
// TCP connection would otherwise hold the attempt until start-to-close.
// Priming a resumed upload counts as moving. Once the body is sent, it
// keeps heartbeating while the device checks it.
func heartbeatUpload(ctx context.Context, cancel context.CancelCauseFunc, body *digestReader, progress pushProgress, answered <-chan struct{}) {
	stallAfter := activity.GetInfo(ctx).HeartbeatTimeout
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRead, lastMoved := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-answered:
			return
		case now := <-tick.C:
			read := body.consumed()
			bodyDone := body.done.Load()
			if read != lastRead || bodyDone {
				lastRead, lastMoved = read, now
				progress.BytesSent = body.sent.Load()
				activity.RecordHeartbeat(ctx, progress)
				continue
			}
			if stallAfter > 0 && now.Sub(lastMoved) >= stallAfter {
				cancel(fmt.Errorf("%w: no bytes moved for %s after %d bytes", errTransferStalled, stallAfter, body.sent.Load()))
				return
			}
		}
	}
}
