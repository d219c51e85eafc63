package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// lastBeat is the heartbeat an attempt ended with, which Temporal hands
// to the next attempt.
func lastBeat(t *testing.T, h *harness) progress {
	t.Helper()
	beats := h.hb.progress(t)
	require.NotEmpty(t, beats)
	return beats[len(beats)-1]
}

// cutByDrop makes the first attempt against a drop device, which cuts the
// upload after half of it, and returns the attempt's harness.
func cutByDrop(t *testing.T, f *fleet.Fleet, req workflows.PushRequest) *harness {
	t.Helper()
	h := newHarness(t)
	_, err := h.push(req)
	requireTransient(t, err, "push", "(attempt 1)")
	st := deviceStats(t, f, firstDevice)
	require.Equal(t, req.Firmware.Size/2, st.Bytes, "the drop device read half the image")
	require.Zero(t, st.Installs)
	return h
}

// suffixSHA256 is the digest of im from byte from on: what a resumed
// upload's body must hash to.
func suffixSHA256(t *testing.T, im image, from int64) string {
	t.Helper()
	r := im.reader()
	_, err := io.CopyN(io.Discard, r, from)
	require.NoError(t, err)
	h := sha256.New()
	_, err = io.Copy(h, r)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// flipByte corrupts the image file at path in place, keeping its size.
func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, f.Close()) }()
	var b [1]byte
	_, err = f.ReadAt(b[:], at)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b[:], at)
	require.NoError(t, err)
}

// offsetAnswer answers HEAD /update with 200 and Upload-Offset: offset.
func offsetAnswer(offset string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Upload-Offset", offset)
		w.WriteHeader(http.StatusOK)
	}
}

// A retry after a cut sends only the rest of the image: the device ends
// up with exactly one image's worth of bytes and one install, and the
// retry's heartbeats carry the offset the device confirmed.
func TestPushFirmwareResumesAfterCut(t *testing.T) {
	t.Parallel()
	im := newImage(t, 40, 3<<20+17) // an odd size: the halves differ
	_, url := writeImage(t, im)
	fwServer := newFirmwareServer(t, im, nil)

	for _, tc := range []struct{ name, url string }{{"file", url}, {"http", fwServer.url()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 50 * time.Millisecond})
			req := pushRequest(deviceURL(srv, firstDevice), im.firmware(tc.url))
			first := cutByDrop(t, f, req)
			half := im.size / 2

			h := newHarness(t, withAttempt(2), withDetails(lastBeat(t, first)))
			res := h.mustPush(req)
			require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size - half}, res)
			eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
			st := deviceStats(t, f, firstDevice)
			require.Equal(t, im.size, st.Bytes, "no byte sent twice")
			require.EqualValues(t, 2, st.Uploads)
			require.EqualValues(t, 1, st.Installs)
			require.Equal(t, targetVersion, st.Version)

			beats := h.hb.progress(t)
			require.NotEmpty(t, beats)
			for _, b := range beats {
				require.Equal(t, half, b.ConfirmedOffset, "heartbeats carry the confirmed offset: %+v", beats)
				require.LessOrEqual(t, b.BytesSent, im.size-half)
			}
		})
	}
}

// The device's answer to HEAD decides where an upload resumes; the
// heartbeat of an earlier attempt only says what was sent.
func TestPushFirmwareResumeAsksTheDevice(t *testing.T) {
	t.Parallel()
	im := newImage(t, 41, 1<<20+3)
	_, url := writeImage(t, im)

	t.Run("heartbeat says otherwise", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: time.Hour})
		req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))
		cutByDrop(t, f, req)
		// A second retry whose heartbeat claims far more than the device has.
		claim := progress{PreviousVersion: oldVersion, Uploading: true, ConfirmedOffset: 100, BytesSent: im.size - 200}
		res := newHarness(t, withAttempt(3), withDetails(claim)).mustPush(req)
		require.Equal(t, im.size-im.size/2, res.BytesSent, "resumed from the device's offset")
		st := deviceStats(t, f, firstDevice)
		require.Equal(t, im.size, st.Bytes)
		require.EqualValues(t, 2, st.Uploads)
	})

	t.Run("device lost its partial", func(t *testing.T) {
		t.Parallel()
		// A rebooted device holds nothing, whatever the heartbeat says.
		f, srv := startFleet(t, fleet.Config{Reboot: time.Hour})
		claim := progress{PreviousVersion: oldVersion, Uploading: true, BytesSent: im.size / 2}
		res := newHarness(t, withDetails(claim)).mustPush(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
		require.Equal(t, im.size, res.BytesSent, "the whole image")
		st := deviceStats(t, f, firstDevice)
		require.Equal(t, im.size, st.Bytes)
		require.EqualValues(t, 1, st.Uploads)
	})

	t.Run("first attempt does not ask", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = offsetAnswer("1000") })
		res := newHarness(t).mustPush(pushRequest(dev.address(), im.firmware(url)))
		require.Equal(t, im.size, res.BytesSent)
		require.Empty(t, dev.offsetProbes(), "no HEAD on a first attempt")
		require.Empty(t, dev.recorded()[0].header.Get("Upload-Offset"))
	})

	t.Run("probe names the image and authorizes", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = offsetAnswer("1000") })
		h := newHarness(t, withAttempt(2), withToken("T"))
		res := h.mustPush(pushRequest(dev.address(), im.firmware(url)))
		require.Equal(t, im.size-1000, res.BytesSent)
		probes := dev.offsetProbes()
		require.Len(t, probes, 1)
		require.Equal(t, im.sha256, probes[0].Get("X-Firmware-SHA256"))
		require.Equal(t, targetVersion, probes[0].Get("X-Firmware-Version"))
		require.Equal(t, "Bearer T", probes[0].Get("Authorization"))

		ups := dev.recorded()
		require.Len(t, ups, 1)
		require.Equal(t, "1000", ups[0].header.Get("Upload-Offset"))
		require.Equal(t, im.size-1000, ups[0].contentLength)
		require.Equal(t, suffixSHA256(t, im, 1000), ups[0].sha256, "the body is the image from the offset on")
		require.Equal(t, im.sha256, ups[0].header.Get("X-Firmware-SHA256"), "the digest is still the whole image's")
	})
}

// Devices without resumable uploads, and answers that do not name a
// usable offset, get the whole image as before.
func TestPushFirmwareWholeUploadWithoutResume(t *testing.T) {
	t.Parallel()
	im := newImage(t, 42, 1<<20+5)
	_, url := writeImage(t, im)

	t.Run("devicemock --no-resume", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Drop: 1, NoResume: true, Reboot: 50 * time.Millisecond})
		req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))
		first := cutByDrop(t, f, req)
		res := newHarness(t, withAttempt(2), withDetails(lastBeat(t, first))).mustPush(req)
		require.Equal(t, im.size, res.BytesSent)
		eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
		st := deviceStats(t, f, firstDevice)
		require.Equal(t, im.size/2+im.size, st.Bytes, "half, then the whole image")
		require.EqualValues(t, 2, st.Uploads)
	})

	for _, tc := range []struct {
		name   string
		headFn func(http.ResponseWriter, *http.Request)
	}{
		{"HEAD 404", nil},
		{"HEAD 405", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusMethodNotAllowed) }},
		{"HEAD 500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{"no Upload-Offset", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }},
		{"garbage Upload-Offset", offsetAnswer("lots")},
		{"negative Upload-Offset", offsetAnswer("-5")},
		{"Upload-Offset at the end", offsetAnswer(strconv.FormatInt(im.size, 10))},
		{"Upload-Offset past the end", offsetAnswer(strconv.FormatInt(im.size+1, 10))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = tc.headFn })
			res := newHarness(t, withAttempt(2)).mustPush(pushRequest(dev.address(), im.firmware(url)))
			require.Equal(t, im.size, res.BytesSent)
			require.Len(t, dev.offsetProbes(), 1)
			ups := dev.recorded()
			require.Len(t, ups, 1)
			_, sent := ups[0].header["Upload-Offset"]
			require.False(t, sent, "a whole upload sends no Upload-Offset")
			require.Equal(t, im.size, ups[0].contentLength)
			require.Equal(t, im.sha256, ups[0].sha256)
		})
	}

	t.Run("HEAD never answered", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) {
			d.headFn = func(w http.ResponseWriter, _ *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			}
		})
		res := newHarness(t, withAttempt(2)).mustPush(pushRequest(dev.address(), im.firmware(url)))
		require.Equal(t, im.size, res.BytesSent)
		require.Equal(t, im.sha256, dev.recorded()[0].sha256)
	})
}

// A 409 names the offset the device really holds: the push resumes from
// there once, and after a second 409 sends the whole image.
func TestPushFirmwareResumeConflict(t *testing.T) {
	t.Parallel()
	im := newImage(t, 43, 2<<20+9)
	_, url := writeImage(t, im)
	stale, actual := im.size/4, im.size/2
	conflict := func(w http.ResponseWriter, offset int64) {
		w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
		answer(w, http.StatusConflict, `{"error":"offset mismatch"}`)
	}

	t.Run("resumes from the device's offset", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) {
			d.headFn = offsetAnswer(strconv.FormatInt(stale, 10))
			d.updateFn = func(w http.ResponseWriter, r *http.Request, body *countingBody) {
				if r.Header.Get("Upload-Offset") != strconv.FormatInt(actual, 10) {
					conflict(w, actual) // answered before reading the body
					return
				}
				_, _ = io.Copy(io.Discard, body)
				answer(w, http.StatusAccepted, `{"status":"accepted"}`)
			}
		})
		h := newHarness(t, withAttempt(2))
		res := h.mustPush(pushRequest(dev.address(), im.firmware(url)))
		require.Equal(t, im.size-actual, res.BytesSent)
		ups := dev.recorded()
		require.Len(t, ups, 2)
		require.Equal(t, strconv.FormatInt(stale, 10), ups[0].header.Get("Upload-Offset"))
		require.Equal(t, strconv.FormatInt(actual, 10), ups[1].header.Get("Upload-Offset"))
		require.Equal(t, im.size-actual, ups[1].contentLength)
		require.Equal(t, im.size-actual, ups[1].bytes)
		require.Equal(t, suffixSHA256(t, im, actual), ups[1].sha256)
		require.Len(t, dev.offsetProbes(), 1, "the 409 is trusted for the offset; no second HEAD")
		beats := h.hb.progress(t)
		require.Equal(t, actual, beats[len(beats)-1].ConfirmedOffset)
	})

	t.Run("second conflict sends the whole image", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) {
			d.headFn = offsetAnswer(strconv.FormatInt(stale, 10))
			d.updateFn = func(w http.ResponseWriter, r *http.Request, body *countingBody) {
				if r.Header.Get("Upload-Offset") != "" {
					conflict(w, actual)
					return
				}
				_, _ = io.Copy(io.Discard, body)
				answer(w, http.StatusAccepted, `{"status":"accepted"}`)
			}
		})
		res := newHarness(t, withAttempt(2)).mustPush(pushRequest(dev.address(), im.firmware(url)))
		require.Equal(t, im.size, res.BytesSent)
		ups := dev.recorded()
		require.Len(t, ups, 3)
		require.Equal(t, strconv.FormatInt(stale, 10), ups[0].header.Get("Upload-Offset"))
		require.Equal(t, strconv.FormatInt(actual, 10), ups[1].header.Get("Upload-Offset"))
		require.Empty(t, ups[2].header.Get("Upload-Offset"))
		require.Equal(t, im.sha256, ups[2].sha256)
	})

	t.Run("devicemock conflict after another upload moved on", func(t *testing.T) {
		t.Parallel()
		f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: time.Hour})
		req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))
		cutByDrop(t, f, req)
		// HEAD answers a stale quarter; devicemock, holding half, answers
		// the resume with 409 and Upload-Offset: half, and the push follows.
		staleHead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				offsetAnswer(strconv.FormatInt(stale, 10))(w, r)
				return
			}
			srv.Config.Handler.ServeHTTP(w, r)
		}))
		t.Cleanup(staleHead.Close)
		req.Address = staleHead.URL + "/devices/" + firstDevice
		res := newHarness(t, withAttempt(2)).mustPush(req)
		require.Equal(t, im.size-im.size/2, res.BytesSent)
		st := deviceStats(t, f, firstDevice)
		require.Equal(t, im.size, st.Bytes, "the 409 cost no body bytes")
		require.EqualValues(t, 3, st.Uploads, "cut, 409, resumed")
	})
}

// A resumed upload still checks the whole image: a local image that no
// longer matches its digest, in the prefix the device holds or in the
// rest, is refused before the device receives its last byte.
func TestPushFirmwareResumedImageCorrupted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		at   func(size int64) int64
	}{
		{"in the held prefix", func(int64) int64 { return 10 }},
		{"in the rest", func(size int64) int64 { return size - 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			im := newImage(t, 44, 1<<20+1)
			path, url := writeImage(t, im)
			f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 10 * time.Millisecond})
			req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))
			first := cutByDrop(t, f, req)

			flipByte(t, path, tc.at(im.size))
			_, err := newHarness(t, withAttempt(2), withDetails(lastBeat(t, first))).push(req)
			requirePermanent(t, err, workflows.ErrChecksumMismatch, "the spec says "+im.sha256)
			time.Sleep(50 * time.Millisecond) // past any reboot, had there been an install
			st := deviceStats(t, f, firstDevice)
			require.EqualValues(t, 2, st.Uploads, "it did resume")
			require.Less(t, st.Bytes, im.size, "the device never got the whole image")
			require.Zero(t, st.Installs)
			require.Equal(t, oldVersion, st.Version)
		})
	}
}

// A device whose kept prefix is bad fails the whole-image check of a
// resumed upload (422) although the worker's image matched: the push
// sends the whole image once more instead of failing the device.
func TestPushFirmwareResumedUploadRefusedByDevice(t *testing.T) {
	t.Parallel()
	im := newImage(t, 45, 1<<20+7)
	path, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 50 * time.Millisecond})
	req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))

	// The device keeps a corrupt first half. (Not sent by a push: it
	// would refuse the corrupt image before the drop device cuts it.)
	flipByte(t, path, 100)
	file, err := os.Open(path)
	require.NoError(t, err)
	upload, err := http.NewRequest(http.MethodPost, req.Address+"/update", file)
	require.NoError(t, err)
	upload.ContentLength = im.size
	upload.Header.Set("X-Firmware-Version", targetVersion)
	upload.Header.Set("X-Firmware-SHA256", im.sha256)
	if resp, err := http.DefaultClient.Do(upload); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the drop device answered %s, want a cut", resp.Status)
	}
	_ = file.Close() // usually closed by the transport already
	require.Equal(t, im.size/2, deviceStats(t, f, firstDevice).Bytes)
	flipByte(t, path, 100)

	res := newHarness(t, withAttempt(2)).mustPush(req)
	require.Equal(t, im.size, res.BytesSent, "the whole image after the 422")
	eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 3, st.Uploads, "cut, resumed and refused, whole")
	require.Equal(t, im.size/2+(im.size-im.size/2)+im.size, st.Bytes)
	require.Equal(t, targetVersion, st.Version)
}

// Priming reads the prefix the device holds from the firmware source; a
// source that stalls there is cut like a stalled upload, and one that
// ends early is refused, before any upload.
func TestPushFirmwareResumePrimingFails(t *testing.T) {
	t.Parallel()
	im := newImage(t, 46, 1<<20)

	t.Run("source stalls", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		fw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.FormatInt(im.size, 10))
			_, _ = io.CopyN(w, im.reader(), 64<<10)
			w.(http.Flusher).Flush()
			<-release
		}))
		t.Cleanup(fw.Close)
		t.Cleanup(func() { close(release) })
		dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = offsetAnswer(strconv.FormatInt(im.size/2, 10)) })

		h := newHarness(t, withAttempt(2), withHeartbeatTimeout(time.Second))
		_, err := h.push(pushRequest(dev.address(), im.firmware(fw.URL+"/fw.bin")))
		requireTransient(t, err, "stalled", "(attempt 2)")
		require.Empty(t, dev.recorded(), "nothing uploaded")
	})

	t.Run("source shorter than the held prefix", func(t *testing.T) {
		t.Parallel()
		fw := newFirmwareServer(t, im, func(s *firmwareServer) { s.chunked = true })
		spec := im.firmware(fw.url())
		spec.Size = im.size + 100
		dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = offsetAnswer(strconv.FormatInt(im.size+50, 10)) })
		_, err := newHarness(t, withAttempt(2)).push(pushRequest(dev.address(), spec))
		requirePermanent(t, err, workflows.ErrChecksumMismatch, "ended after 1048576 of its 1048676 bytes")
		require.Empty(t, dev.recorded(), "nothing uploaded")
	})
}

// A worker that dies while resuming (here: the attempt is cancelled, which
// closes its connection as a dying process does) leaves the device a
// longer partial; the next attempt resumes from it and the device installs
// once. The image is far bigger than the socket buffers, or the cancelled
// attempt would have delivered it whole anyway.
func TestPushFirmwareInterruptedWhileResuming(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	im := newImage(t, 48, size)
	fw := newFirmwareServer(t, im, nil)
	f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 50 * time.Millisecond})
	addr := deviceURL(srv, firstDevice)
	req := pushRequest(addr, im.firmware(fw.url()))
	half := im.size / 2
	first := cutByDrop(t, f, req)

	bg, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	go func() {
		for bg.Err() == nil && deviceStats(t, f, firstDevice).Bytes < half+(2<<20) {
			time.Sleep(time.Millisecond)
		}
		cancel(temporal.NewCanceledError())
	}()
	second := newHarness(t, withAttempt(2), withDetails(lastBeat(t, first)), withBackground(bg))
	_, err := second.push(req)
	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "want a cancellation, got %T: %v", err, err)
	var held int64
	eventually(t, 5*time.Second, func() bool { held = heldOffset(t, addr, im); return held > half }, "the device keeps the resumed part")
	require.Less(t, held, im.size)
	require.Equal(t, held, deviceStats(t, f, firstDevice).Bytes, "no byte read twice")

	res := newHarness(t, withAttempt(3), withDetails(lastBeat(t, second))).mustPush(req)
	require.Equal(t, im.size-held, res.BytesSent)
	eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
	st := deviceStats(t, f, firstDevice)
	require.Equal(t, im.size, st.Bytes, "no byte sent twice")
	require.EqualValues(t, 3, st.Uploads)
	require.EqualValues(t, 1, st.Installs)
}
