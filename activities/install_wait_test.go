package activities_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A retry after an upload whose answer was lost can find the device
// installing that image (503 on /version). It waits for the install, as
// verify would, instead of failing its attempt in a moment: a slow reboot
// must not use up the retry policy and fail a device that updates fine.
func TestPushFirmwareRetryWaitsForInstall(t *testing.T) {
	t.Parallel()
	im := newImage(t, 35, 64<<10)
	_, url := writeImage(t, im)
	afterUpload := withDetails(progress{PreviousVersion: oldVersion, Uploading: true, BytesSent: im.size})

	// installing: a device that took the image from attempt 1 and now
	// installs it for reboot.
	installing := func(t *testing.T, reboot time.Duration) (*fleet.Fleet, string) {
		f, srv := startFleet(t, fleet.Config{Reboot: reboot})
		addr := deviceURL(srv, firstDevice)
		newHarness(t).mustPush(pushRequest(addr, im.firmware(url)))
		return f, addr
	}

	t.Run("waits for the install it may have caused", func(t *testing.T) {
		t.Parallel()
		f, addr := installing(t, 2*time.Second)
		res := newHarness(t, withAttempt(2), afterUpload).mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion}, res, "installed by the earlier attempt")
		st := deviceStats(t, f, firstDevice)
		require.EqualValues(t, 1, st.Uploads, "not flashed twice")
		require.EqualValues(t, 1, st.Installs)
		require.Equal(t, targetVersion, st.Version)
	})
	t.Run("gives up after InstallWithin", func(t *testing.T) {
		t.Parallel()
		f, addr := installing(t, time.Hour)
		req := pushRequest(addr, im.firmware(url))
		req.InstallWithin = time.Second
		_, err := newHarness(t, withAttempt(2), afterUpload).push(req)
		requireTransient(t, err, "probe", "503", "(attempt 2)")
		require.EqualValues(t, 1, deviceStats(t, f, firstDevice).Uploads)
	})
	t.Run("cut by the worker's shutdown", func(t *testing.T) {
		t.Parallel()
		f, addr := installing(t, time.Hour)
		h := newHarness(t, withAttempt(2), afterUpload)
		h.acts.BeginShutdown(500 * time.Millisecond)
		_, err := h.push(pushRequest(addr, im.firmware(url)))
		ae := appError(t, err)
		require.Equal(t, "WorkerShutdown", ae.Type(), ae.Message())
		require.False(t, ae.NonRetryable(), "another worker waits again")
		require.True(t, lastBeat(t, h).Uploading, "the next attempt still knows the image may be installed")
		require.EqualValues(t, 1, deviceStats(t, f, firstDevice).Uploads)
	})
	t.Run("no earlier upload: a busy device fails the attempt at once", func(t *testing.T) {
		t.Parallel()
		f, addr := installing(t, time.Hour)
		_, err := newHarness(t, withAttempt(2), withDetails(progress{PreviousVersion: oldVersion})).push(pushRequest(addr, im.firmware(url)))
		requireTransient(t, err, "probe", "503")
		require.EqualValues(t, 1, deviceStats(t, f, firstDevice).Uploads)
	})
}
