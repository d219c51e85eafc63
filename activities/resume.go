package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// uploadOffsetHeader carries the bytes of the image a device holds: in its
// answers to HEAD /update and 409, and on a resumed upload, where the body
// starts.
const uploadOffsetHeader = "Upload-Offset"

// offsetProbeTimeout bounds HEAD /update; a device that does not answer
// in time gets the whole image.
const offsetProbeTimeout = 15 * time.Second

// isRetry says whether an earlier attempt may have left part of the image
// on the device. The first attempt does not ask: that saves a request per
// device in the common case.
func isRetry(ctx context.Context, earlier pushProgress) bool {
	return activity.GetInfo(ctx).Attempt > 1 || earlier.BytesSent > 0 || earlier.ConfirmedOffset > 0
}

// deviceOffset asks the device how many bytes of this image it holds, with
// HEAD {address}/update. The earlier attempt's heartbeat says only what was
// sent, not what arrived or survived a reboot, so the device's answer
// decides. Anything but 200 with an Upload-Offset means 0, the whole image:
// a device without resumable uploads (404, 405) keeps working as before.
func (a *Activities) deviceOffset(ctx context.Context, req workflows.PushRequest) int64 {
	probeCtx, cancel := context.WithTimeout(ctx, offsetProbeTimeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(probeCtx, http.MethodHead, req.Address+"/update", nil)
	if err != nil {
		return 0
	}
	a.setImageHeaders(httpReq, req)
	resp, err := a.Client.Do(httpReq)
	if err != nil {
		return 0
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	return parseOffset(resp.Header.Get(uploadOffsetHeader))
}

// parseOffset reads an Upload-Offset; anything but a byte count is 0.
func parseOffset(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// primeWithHeldPrefix hashes the prefix the device holds, without sending
// it. A firmware source that stalls meanwhile is cut like a stalled
// upload: the heartbeat cancels ctx, and closing the image ends the read.
func primeWithHeldPrefix(ctx context.Context, image io.Closer, body *digestReader, offset int64) error {
	stop := context.AfterFunc(ctx, func() { _ = image.Close() })
	defer stop()
	return body.prime(offset)
}

// resumeRefusal is a device's refusal of a resumed upload that another
// upload can get past: 409, the device holds another offset than the one
// we resumed from; or 422, the whole image failed the device's check
// although ours matched, so the prefix it kept is suspect.
type resumeRefusal struct {
	answer       string
	deviceOffset int64 // where the device says it stands; 0 to start over
}

func (e *resumeRefusal) Error() string {
	return fmt.Sprintf("device answered %s to a resumed upload (it holds %d bytes)", e.answer, e.deviceOffset)
}

// resumeRefused recognizes a resumeRefusal in a device's answer to a
// resumed upload; nil for any other answer.
func resumeRefused(resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusConflict:
		return &resumeRefusal{answer: resp.Status, deviceOffset: parseOffset(resp.Header.Get(uploadOffsetHeader))}
	case http.StatusUnprocessableEntity:
		return &resumeRefusal{answer: resp.Status}
	}
	return nil
}

// uploadFrom uploads the image from offset. When the device refuses a
// resumed upload, it tries once more from the offset a 409 names, then
// sends the whole image, whose answer is final.
func (a *Activities) uploadFrom(ctx context.Context, req workflows.PushRequest, signed *signatureCheck, previous string, offset int64) (workflows.PushResult, error) {
	for refusals := 0; ; refusals++ {
		result, err := a.upload(ctx, req, signed, previous, offset)
		var refusal *resumeRefusal
		if !errors.As(err, &refusal) {
			return result, err
		}
		next := int64(0)
		if refusals == 0 {
			next = refusal.deviceOffset
		}
		activity.GetLogger(ctx).Info("device refused the resumed upload", "DeviceID", req.DeviceID,
			"Answer", refusal.answer, "Offset", offset, "NextOffset", next)
		offset = next
	}
}
