package activities_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A push still uploading when the shutdown grace runs out is cut: it
// fails retryably as WorkerShutdown, its last heartbeat says how far it
// got, and the next attempt resumes from what the device holds.
func TestPushFirmwareCutByShutdownResumes(t *testing.T) {
	t.Parallel()
	im := newImage(t, 50, 8<<20)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Bandwidth: 2 << 20, Reboot: 50 * time.Millisecond})
	req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))

	first := newHarness(t)
	go func() {
		for f.Stats().Devices[0].Bytes == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		first.acts.BeginShutdown(500 * time.Millisecond)
	}()
	_, err := first.push(req)
	ae := appError(t, err)
	require.Equal(t, "WorkerShutdown", ae.Type(), ae.Message())
	require.False(t, ae.NonRetryable(), "the server must retry it: %s", ae.Message())
	require.Contains(t, ae.Message(), "the next attempt resumes the upload")

	final := lastBeat(t, first)
	require.True(t, final.Uploading)
	require.Greater(t, final.BytesSent, int64(0), "the final heartbeat says how far the upload got")
	require.Less(t, final.BytesSent, im.size)
	// The device notices the cut at its next read: then it holds a partial.
	eventually(t, 5*time.Second, func() bool { return heldOffset(t, req.Address, im) > 0 }, "the device keeps the cut upload")
	held := deviceStats(t, f, firstDevice)
	require.Equal(t, held.Bytes, heldOffset(t, req.Address, im))
	require.Less(t, held.Bytes, im.size, "cut before the end")
	require.Zero(t, held.Installs)

	next := newHarness(t, withAttempt(2), withDetails(final))
	res := next.mustPush(req)
	require.Equal(t, im.size-held.Bytes, res.BytesSent, "the retry sends only what the device lacks")
	eventually(t, 5*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
	require.Equal(t, im.size, deviceStats(t, f, firstDevice).Bytes, "no byte sent twice")
}

// A push that ends within the grace is not disturbed by the shutdown.
func TestPushFirmwareFinishesWithinGrace(t *testing.T) {
	t.Parallel()
	im := newImage(t, 51, 1<<20)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Bandwidth: 2 << 20, Reboot: 50 * time.Millisecond})

	h := newHarness(t)
	h.acts.BeginShutdown(time.Minute)
	res := h.mustPush(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
	require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)
	eventually(t, 5*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
}
