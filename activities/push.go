package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// pushProgress is the push's heartbeat: enough for the next attempt to
// know what the device ran before this rollout touched it. No secrets.
type pushProgress struct {
	PreviousVersion string `json:"previousVersion,omitempty"`
	Uploading       bool   `json:"uploading"`
	BytesSent       int64  `json:"bytesSent"`
}

// PushFirmware asks the device its version, and unless it already runs
// the target, streams the image to POST {address}/update. The image is
// never held in memory; its SHA-256 is checked on the way. A device that
// runs the target version on a retry got it from an earlier attempt whose
// answer was lost (a crashed worker, a dropped connection): it is not
// flashed again.
func (a *Activities) PushFirmware(ctx context.Context, req workflows.PushRequest) (workflows.PushResult, error) {
	logger := activity.GetLogger(ctx)
	var earlier pushProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &earlier)
	}

	current, err := a.getVersion(ctx, "probe", req.Address)
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

	image, size, err := a.openImage(ctx, req.Firmware)
	if err != nil {
		return workflows.PushResult{}, err
	}
	defer func() { _ = image.Close() }()

	// Recorded before the first byte moves, so that a retry after a lost
	// answer knows this rollout may have installed the image.
	activity.RecordHeartbeat(ctx, pushProgress{PreviousVersion: previous, Uploading: true})
	body := newDigestReader(image, req.Firmware.SHA256, size)
	uploadCtx, cancelUpload := context.WithCancelCause(ctx)
	defer cancelUpload(nil)
	answered := make(chan struct{})
	go heartbeatUpload(uploadCtx, cancelUpload, body, previous, answered)

	httpReq, err := http.NewRequestWithContext(uploadCtx, http.MethodPost, req.Address+"/update", io.NopCloser(body))
	if err != nil {
		return workflows.PushResult{}, permanent(workflows.ErrBadDeviceAnswer, "push: bad device address: "+err.Error())
	}
	httpReq.ContentLength = size
	if size == 0 {
		httpReq.Body = http.NoBody
	}
	httpReq.Header.Set("Content-Type", "application/octet-stream")
	httpReq.Header.Set("X-Firmware-Version", req.Firmware.Version)
	httpReq.Header.Set("X-Firmware-SHA256", req.Firmware.SHA256)
	httpReq.Header.Set("X-Rollout-ID", req.RolloutID)
	httpReq.Header.Set("X-Device-ID", req.DeviceID)
	a.authorize(httpReq)

	resp, err := a.Client.Do(httpReq)
	close(answered)
	if why := body.refused(); why != "" {
		if resp != nil {
			drainAndClose(resp.Body)
		}
		return workflows.PushResult{}, permanent(workflows.ErrChecksumMismatch, "push: "+why)
	}
	if err != nil {
		if why := body.sourceFailed(); why != "" && ctx.Err() == nil {
			// The image broke off, not the device: say so in the reason.
			return workflows.PushResult{}, transient(ctx, "push: reading the firmware image failed: "+why, 0)
		}
		return workflows.PushResult{}, networkError(uploadCtx, "push", err)
	}
	defer drainAndClose(resp.Body)

	result := workflows.PushResult{PreviousVersion: previous, BytesSent: body.sent.Load()}
	switch resp.StatusCode {
	case http.StatusAccepted:
		logger.Info("device accepted the image", "DeviceID", req.DeviceID, "Bytes", result.BytesSent)
		return result, nil
	case http.StatusOK:
		var answer struct {
			Status string `json:"status"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(&answer)
		if answer.Status != "already-installed" {
			return workflows.PushResult{}, permanent(workflows.ErrBadDeviceAnswer,
				fmt.Sprintf("push: device answered 200 with status %q, expected 202 or already-installed", answer.Status))
		}
		result.AlreadyInstalled = true
		return result, nil
	default:
		return workflows.PushResult{}, answerError(ctx, "push", resp)
	}
}

// errTransferStalled is the cause heartbeatUpload cancels a stalled
// upload with; networkError reports it as a transient device failure.
var errTransferStalled = errors.New("transfer stalled")

// heartbeatUpload reports the bytes sent while they move, and cancels the
// upload when they stop moving for a heartbeat timeout: a stalled TCP
// connection would otherwise hold the attempt until start-to-close. Once
// the body is sent, it keeps heartbeating while the device checks it.
func heartbeatUpload(ctx context.Context, cancel context.CancelCauseFunc, body *digestReader, previous string, answered <-chan struct{}) {
	stallAfter := activity.GetInfo(ctx).HeartbeatTimeout
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSent, lastMoved := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-answered:
			return
		case now := <-tick.C:
			sent := body.sent.Load()
			bodyDone := body.done.Load()
			if sent != lastSent || bodyDone {
				lastSent, lastMoved = sent, now
				activity.RecordHeartbeat(ctx, pushProgress{PreviousVersion: previous, Uploading: true, BytesSent: sent})
				continue
			}
			if stallAfter > 0 && now.Sub(lastMoved) >= stallAfter {
				cancel(fmt.Errorf("%w: no bytes moved for %s after %d bytes", errTransferStalled, stallAfter, sent))
				return
			}
		}
	}
}
