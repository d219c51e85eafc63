package activities_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func TestPushFirmwareFromFileToDevicemock(t *testing.T) {
	t.Parallel()
	im := newImage(t, 1, 4<<20+123) // a few MiB, not a multiple of any buffer
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Reboot: 300 * time.Millisecond})
	addr := deviceURL(srv, firstDevice)
	h := newHarness(t)

	res := h.mustPush(pushRequest(addr, im.firmware(url)))
	require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)

	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Uploads, "exactly one upload")
	require.Equal(t, im.size, st.Bytes, "the device read the whole image")
	require.Zero(t, st.Installs, "the install completes only after the reboot")
	require.Equal(t, oldVersion, st.Version)

	ver, err := h.verify(workflows.VerifyRequest{DeviceID: firstDevice, Address: addr, Version: targetVersion,
		PreviousVersion: oldVersion, Within: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, targetVersion, ver.Version)
	st = deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Installs, "one install after the reboot")
	require.Equal(t, targetVersion, st.Version)

	// A later push (another attempt, another rollout) only probes.
	again := h.mustPush(pushRequest(addr, im.firmware(url)))
	require.Equal(t, workflows.PushResult{AlreadyInstalled: true, PreviousVersion: targetVersion}, again)
	st = deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Uploads, "a device on the target version is not uploaded to")
	require.EqualValues(t, 1, st.Installs)
	require.Equal(t, im.size, st.Bytes)
}

func TestPushFirmwareFromHTTPAndHTTPS(t *testing.T) {
	t.Parallel()
	im := newImage(t, 2, 3<<20+7)

	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fw := &firmwareServer{}
			var client *http.Client
			if tc.tls {
				fw.Server = httptest.NewTLSServer(fw.handler(im))
				pool := x509.NewCertPool()
				pool.AddCert(fw.Certificate())
				client = activities.NewHTTPClient(&tls.Config{RootCAs: pool})
			} else {
				fw.Server = httptest.NewServer(fw.handler(im))
			}
			t.Cleanup(fw.Close)
			require.Contains(t, fw.url(), tc.name+"://")

			f, srv := startFleet(t, fleet.Config{Reboot: time.Hour})
			h := newHarness(t, withClient(client))
			res := h.mustPush(pushRequest(deviceURL(srv, firstDevice), im.firmware(fw.url())))
			require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)
			require.EqualValues(t, 1, fw.gets.Load(), "the image is fetched once")
			st := deviceStats(t, f, firstDevice)
			require.EqualValues(t, 1, st.Uploads)
			require.Equal(t, im.size, st.Bytes)
		})
	}
}

// TestPushFirmwareStreamsWithoutBuffering pushes a 64 MiB image generated
// on the fly by the firmware server to a device that hashes and discards
// it. If any stage held the image whole (io.ReadAll, a bytes.Buffer, a
// retained request body), the bytes allocated during the push would be at
// least the image size: they stay far below it.
func TestPushFirmwareStreamsWithoutBuffering(t *testing.T) {
	// Not parallel: allocation counters are process-wide.
	const size = 64 << 20
	im := newImage(t, 3, size)
	fw := newFirmwareServer(t, im, nil)

	var peakHeap atomic.Uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			old := peakHeap.Load()
			if ms.HeapAlloc <= old || peakHeap.CompareAndSwap(old, ms.HeapAlloc) {
				return
			}
		}
	}
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.updateFn = func(w http.ResponseWriter, r *http.Request, body *countingBody) {
			next := int64(4 << 20)
			body.onRead = func(total int64) {
				if total >= next { // sample the heap every 4 MiB received
					next += 4 << 20
					sample()
				}
			}
			if _, err := io.Copy(io.Discard, body); err != nil {
				answer(w, http.StatusBadRequest, "")
				return
			}
			answer(w, http.StatusAccepted, `{"status":"accepted"}`)
		}
	})
	h := newHarness(t)
	req := pushRequest(dev.address(), im.firmware(fw.url()))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peakHeap.Store(before.HeapAlloc)

	res := h.mustPush(req)

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: size}, res)
	ups := dev.recorded()
	require.Len(t, ups, 1)
	require.NoError(t, ups[0].err)
	require.EqualValues(t, size, ups[0].contentLength, "Content-Length is the image size")
	require.EqualValues(t, size, ups[0].bytes)
	require.Equal(t, im.sha256, ups[0].sha256, "the device got the image intact")

	allocated := after.TotalAlloc - before.TotalAlloc
	heapGrowth := peakHeap.Load() - before.HeapAlloc
	t.Logf("pushed %d MiB: %d KiB allocated in all, peak heap growth %d KiB", size>>20, allocated>>10, heapGrowth>>10)
	require.Less(t, allocated, uint64(size/4), "bytes allocated during the push")
	require.Less(t, heapGrowth, uint64(size/4), "peak heap growth during the push")
}

func TestPushFirmwareSendsProtocolHeaders(t *testing.T) {
	t.Parallel()
	im := newImage(t, 4, 100<<10)
	_, url := writeImage(t, im)

	for _, tc := range []struct {
		name, token, want string
	}{{"with token", "T", "Bearer T"}, {"without token", "", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, nil)
			h := newHarness(t, withToken(tc.token))
			req := workflows.PushRequest{RolloutID: "rollout-7", DeviceID: "pos-nyc-001", Address: dev.address(),
				Firmware: workflows.Firmware{Version: "2.4.0", URL: url, SHA256: im.sha256}}
			res := h.mustPush(req)
			require.Equal(t, im.size, res.BytesSent)

			ups := dev.recorded()
			require.Len(t, ups, 1)
			hd := ups[0].header
			require.Equal(t, im.size, ups[0].contentLength, "Content-Length is known for a file")
			require.Equal(t, strconv.FormatInt(im.size, 10), hd.Get("Content-Length"))
			require.Equal(t, "application/octet-stream", hd.Get("Content-Type"))
			require.Equal(t, "2.4.0", hd.Get("X-Firmware-Version"))
			require.Equal(t, im.sha256, hd.Get("X-Firmware-SHA256"))
			require.Equal(t, "rollout-7", hd.Get("X-Rollout-ID"))
			require.Equal(t, "pos-nyc-001", hd.Get("X-Device-ID"))
			require.Equal(t, tc.want, hd.Get("Authorization"))
			_, present := hd["Authorization"]
			require.Equal(t, tc.token != "", present, "Authorization is sent only with a token")
			require.Equal(t, im.sha256, ups[0].sha256)

			probes := dev.probes()
			require.Len(t, probes, 1, "one probe of /version before the upload")
			require.Equal(t, tc.want, probes[0].Get("Authorization"))
		})
	}
}

func TestPushFirmwareDevicemockToken(t *testing.T) {
	t.Parallel()
	im := newImage(t, 5, 64<<10)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Devices: 2, Token: "s3cret", Reboot: time.Hour})

	for _, tok := range []string{"", "wrong"} {
		h := newHarness(t, withToken(tok))
		_, err := h.push(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
		requirePermanent(t, err, workflows.ErrDeviceRefused, "401")
	}
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 2, st.Uploads)
	require.Zero(t, st.Installs)

	h := newHarness(t, withToken("s3cret"))
	req := pushRequest(deviceURL(srv, "dev-00002"), im.firmware(url))
	req.DeviceID = "dev-00002"
	res := h.mustPush(req)
	require.Equal(t, im.size, res.BytesSent)
	st = deviceStats(t, f, "dev-00002")
	require.EqualValues(t, 1, st.Uploads)
	require.Equal(t, im.size, st.Bytes)
}

func TestPushFirmwareDevicemockFaults(t *testing.T) {
	t.Parallel()
	im := newImage(t, 6, 512<<10)
	_, url := writeImage(t, im)

	t.Run("offline device is retryable", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Offline: 1})
		_, err := newHarness(t).push(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
		requireTransient(t, err, "device unreachable", "(attempt 1)")
		st := deviceStats(t, f, firstDevice)
		require.Zero(t, st.Uploads, "the probe failed, nothing was uploaded")
		require.Zero(t, st.Installs)
	})

	t.Run("dropped upload succeeds on the next attempt", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 200 * time.Millisecond})
		addr := deviceURL(srv, firstDevice)

		_, err := newHarness(t, withAttempt(1)).push(pushRequest(addr, im.firmware(url)))
		requireTransient(t, err, "push", "(attempt 1)")
		st := deviceStats(t, f, firstDevice)
		require.EqualValues(t, 1, st.Uploads)
		require.Less(t, st.Bytes, im.size, "the device cut the upload mid-stream")
		require.Zero(t, st.Installs)

		// The retry resumes where the cut left the device (resume_test.go).
		res := newHarness(t, withAttempt(2)).mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size - st.Bytes}, res)
		eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
		st = deviceStats(t, f, firstDevice)
		require.EqualValues(t, 2, st.Uploads)
		require.EqualValues(t, 1, st.Installs, "one install")
		require.Equal(t, targetVersion, st.Version)
	})

	t.Run("fail-5xx device answers 503 twice then takes the image", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Fail5xx: 1, Reboot: time.Hour})
		addr := deviceURL(srv, firstDevice)
		for attempt := int32(1); attempt <= 2; attempt++ {
			_, err := newHarness(t, withAttempt(attempt)).push(pushRequest(addr, im.firmware(url)))
			requireTransient(t, err, "503", "(attempt "+strconv.Itoa(int(attempt))+")")
		}
		res := newHarness(t, withAttempt(3)).mustPush(pushRequest(addr, im.firmware(url)))
		require.Equal(t, im.size, res.BytesSent)
		require.EqualValues(t, 3, deviceStats(t, f, firstDevice).Uploads)
	})

	t.Run("fail-4xx device refuses for good", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Fail4xx: 1})
		_, err := newHarness(t).push(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
		requirePermanent(t, err, workflows.ErrDeviceRefused, "403", "upload refused")
		require.Zero(t, deviceStats(t, f, firstDevice).Installs)
	})
}
