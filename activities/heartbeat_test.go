package activities_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A slow upload heartbeats: first uploading=true before any byte moves,
// then the bytes sent as they grow. The image is several times bigger
// than what the loopback socket buffers swallow at once (~4 MB), or the
// whole of it would count as sent at the first tick.
func TestPushFirmwareHeartbeatsProgress(t *testing.T) {
	t.Parallel()
	const size = 12 << 20
	im := newImage(t, 30, size)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Bandwidth: 4 << 20, Reboot: time.Hour})

	// What the device had received when each heartbeat was recorded.
	var mu sync.Mutex
	var deviceBytes, deviceUploads []int64
	h := newHarness(t, withHeartbeatHook(func([]any) {
		st := f.Stats().Devices[0]
		mu.Lock()
		defer mu.Unlock()
		deviceBytes = append(deviceBytes, st.Bytes)
		deviceUploads = append(deviceUploads, st.Uploads)
	}))
	var listened []progress
	h.env.SetOnActivityHeartbeatListener(func(info *activity.Info, details converter.EncodedValues) {
		var p progress
		if details.Get(&p) == nil {
			mu.Lock()
			listened = append(listened, p)
			mu.Unlock()
		}
	})

	start := time.Now()
	res := h.mustPush(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
	elapsed := time.Since(start)
	require.Equal(t, int64(size), res.BytesSent)
	require.Greater(t, elapsed, 2500*time.Millisecond, "the device's bandwidth cap slowed the upload")

	beats := h.hb.progress(t)
	t.Logf("%.1fs, heartbeats %+v", elapsed.Seconds(), beats)
	require.GreaterOrEqual(t, len(beats), 3)
	first := beats[0]
	require.Equal(t, progress{PreviousVersion: oldVersion, Uploading: true}, first, "first heartbeat: uploading, nothing sent")
	mu.Lock()
	require.Zero(t, deviceUploads[0], "the first heartbeat is recorded before the upload starts")
	require.Zero(t, deviceBytes[0])
	require.NotEmpty(t, listened, "the SDK passes the first heartbeat on to the server")
	require.Equal(t, first, listened[0])
	mu.Unlock()

	var partial int
	for i, b := range beats {
		require.True(t, b.Uploading)
		require.Equal(t, oldVersion, b.PreviousVersion)
		require.LessOrEqual(t, b.BytesSent, int64(size))
		if i > 0 {
			require.GreaterOrEqual(t, b.BytesSent, beats[i-1].BytesSent, "progress never goes back")
		}
		if b.BytesSent > 0 && b.BytesSent < size {
			partial++
		}
	}
	require.Positive(t, partial, "some heartbeat reports a partial upload")
}

// The heartbeat of an earlier attempt tells a retry that this rollout may
// have installed the image already, and what the device ran before.
func TestPushFirmwareRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	im := newImage(t, 31, 64<<10)
	_, url := writeImage(t, im)

	onTarget := func(t *testing.T) (*fleet.Fleet, string) {
		f, srv := startFleet(t, fleet.Config{Version: targetVersion})
		return f, deviceURL(srv, firstDevice)
	}

	t.Run("installed by an earlier attempt", func(t *testing.T) {
		t.Parallel()
		f, addr := onTarget(t)
		h := newHarness(t, withAttempt(2), withDetails(progress{PreviousVersion: oldVersion, Uploading: true, BytesSent: 1234}))
		res := h.mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, workflows.PushResult{AlreadyInstalled: false, PreviousVersion: oldVersion}, res)
		require.Zero(t, deviceStats(t, f, firstDevice).Uploads, "not flashed twice")
	})
	t.Run("already current without earlier details", func(t *testing.T) {
		t.Parallel()
		f, addr := onTarget(t)
		res := newHarness(t).mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, workflows.PushResult{AlreadyInstalled: true, PreviousVersion: targetVersion}, res)
		require.Zero(t, deviceStats(t, f, firstDevice).Uploads)
	})
	t.Run("earlier attempt that never uploaded", func(t *testing.T) {
		t.Parallel()
		f, addr := onTarget(t)
		h := newHarness(t, withDetails(progress{PreviousVersion: oldVersion}))
		res := h.mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, workflows.PushResult{AlreadyInstalled: true, PreviousVersion: oldVersion}, res)
		require.Zero(t, deviceStats(t, f, firstDevice).Uploads)
	})
	t.Run("earliest previous version wins on a re-upload", func(t *testing.T) {
		t.Parallel()
		// The device reports 1.5.0 (say, a concurrent change), but the first
		// attempt saw 1.0.0: the rollout remembers what it found.
		f, srv := startFleet(t, fleet.Config{Version: "1.5.0", Reboot: time.Hour})
		h := newHarness(t, withDetails(progress{PreviousVersion: oldVersion, Uploading: true, BytesSent: 99}))
		res := h.mustPush(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
		require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)
		st := deviceStats(t, f, firstDevice)
		require.EqualValues(t, 1, st.Uploads)
		require.Equal(t, im.size, st.Bytes)
		beats := h.hb.progress(t)
		require.NotEmpty(t, beats)
		require.Equal(t, oldVersion, beats[0].PreviousVersion, "heartbeats carry the remembered version on")
	})
}

// stallingDevice reads a little of an upload, then stops reading until
// released, like a device whose TCP window stays shut.
func stallingDevice(t *testing.T, readFirst int64) (dev *fakeDevice, releaseDevice func()) {
	release := make(chan struct{})
	var once sync.Once
	releaseDevice = func() { once.Do(func() { close(release) }) }
	// Registered before the server's Close (cleanups run last-in first-out),
	// so the blocked handler is released before the server waits for it.
	defer t.Cleanup(releaseDevice)
	dev = newFakeDevice(t, func(d *fakeDevice) {
		d.updateFn = func(w http.ResponseWriter, r *http.Request, body *countingBody) {
			_, _ = io.CopyN(io.Discard, body, readFirst)
			<-release
			answer(w, http.StatusServiceUnavailable, "")
		}
	})
	return dev, releaseDevice
}

func TestPushFirmwareDetectsStall(t *testing.T) {
	t.Parallel()
	// Bigger than any socket buffering between the worker and the device,
	// so the worker's sender really blocks. Generated on the fly.
	const size = 64 << 20
	im := newImage(t, 32, size)
	fw := newFirmwareServer(t, im, nil)
	dev, release := stallingDevice(t, 64<<10)

	h := newHarness(t, withHeartbeatTimeout(time.Second))
	start := time.Now()
	_, err := h.push(pushRequest(dev.address(), im.firmware(fw.url())))
	elapsed := time.Since(start)
	release()

	ae := requireTransient(t, err, "stalled", "no bytes moved for 1s", "(attempt 1)")
	t.Logf("stall reported after %s: %s", elapsed, ae.Message())
	eventually(t, 2*time.Second, func() bool { return len(dev.recorded()) == 1 }, "the device handler returned")
	require.Less(t, dev.recorded()[0].bytes, int64(size))
	beats := h.hb.progress(t)
	require.NotEmpty(t, beats)
	require.Less(t, beats[len(beats)-1].BytesSent, int64(size))
}

// A device may take a while to answer once it has the whole image (it
// checks and stores it). That is not a stall, whether or not the size of
// the image was known in advance.
func TestPushFirmwareSlowAnswerIsNotAStall(t *testing.T) {
	t.Parallel()
	im := newImage(t, 33, 256<<10)
	sized := newFirmwareServer(t, im, nil)
	chunked := newFirmwareServer(t, im, func(s *firmwareServer) { s.chunked = true })

	for _, tc := range []struct {
		name string
		fw   workflows.Firmware
	}{
		{"size known", im.firmware(sized.url())},
		{"size unknown", workflows.Firmware{Version: targetVersion, URL: chunked.url(), SHA256: im.sha256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
					_, _ = io.Copy(io.Discard, body)
					time.Sleep(2500 * time.Millisecond) // > 2 heartbeat timeouts
					answer(w, http.StatusAccepted, `{"status":"accepted"}`)
				}
			})
			h := newHarness(t, withHeartbeatTimeout(time.Second))
			res, err := h.push(pushRequest(dev.address(), tc.fw))
			require.NoError(t, err)
			require.Equal(t, im.size, res.BytesSent)
			require.Equal(t, im.sha256, dev.recorded()[0].sha256)
			// While the device checks the image, the push keeps heartbeating
			// so the server's heartbeat timeout does not fire either.
			beats := h.hb.progress(t)
			full := 0
			for _, b := range beats {
				if b.BytesSent == im.size {
					full++
				}
			}
			require.GreaterOrEqual(t, full, 2, "heartbeats while the device answers: %+v", beats)
		})
	}
}

// cancelWhenDeviceHasBytes cancels the activity, as the server does
// (with a CanceledError cause), once the device has received some bytes.
func cancelWhenDeviceHasBytes(t *testing.T, f *fleet.Fleet) (context.Context, *time.Time) {
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	var at time.Time
	go func() {
		for ctx.Err() == nil {
			if deviceStats(t, f, firstDevice).Bytes > 0 {
				at = time.Now()
				cancel(temporal.NewCanceledError())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return ctx, &at
}

func TestPushFirmwareCancelledMidUpload(t *testing.T) {
	t.Parallel()
	im := newImage(t, 34, 8<<20)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Bandwidth: 1 << 20, Reboot: 10 * time.Millisecond})
	bg, cancelledAt := cancelWhenDeviceHasBytes(t, f)

	h := newHarness(t, withBackground(bg))
	_, err := h.push(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))

	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "want a cancellation, got %T: %v", err, err)
	require.False(t, cancelledAt.IsZero())

	time.Sleep(100 * time.Millisecond) // past the reboot, had an install begun
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Uploads)
	require.Less(t, st.Bytes, im.size)
	require.Zero(t, st.Installs, "a cancelled upload installs nothing")
	require.Equal(t, oldVersion, st.Version)
}

func TestVerifyVersionCancelled(t *testing.T) {
	t.Parallel()
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.versionFn = func(w http.ResponseWriter, _ *http.Request) { answer(w, http.StatusServiceUnavailable, "") }
	})
	bg, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	time.AfterFunc(500*time.Millisecond, func() { cancel(temporal.NewCanceledError()) })

	h := newHarness(t, withBackground(bg))
	start := time.Now()
	_, err := h.verify(workflows.VerifyRequest{DeviceID: firstDevice, Address: dev.address(), Version: targetVersion,
		PreviousVersion: oldVersion, Within: time.Minute})
	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "want a cancellation, got %T: %v", err, err)
	// A hang detector, not a timing: without the cancellation it would
	// poll for its whole minute.
	require.Less(t, time.Since(start), 30*time.Second)
}
