package activities_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A wrong image must never reach a device whole: the digest is checked
// before the last chunk leaves, so devicemock installs nothing and counts
// fewer bytes than the image has.
func TestPushFirmwareDigestMismatch(t *testing.T) {
	t.Parallel()
	im := newImage(t, 20, 2<<20+5)
	other := newImage(t, 21, 10)
	_, url := writeImage(t, im)
	fw := newFirmwareServer(t, im, func(s *firmwareServer) { s.chunked = true })

	for _, tc := range []struct {
		name string
		fw   workflows.Firmware
		// sizeUnknown: the upload is chunked and the mismatch shows only at
		// the image's end, after its last data chunk; the terminating chunk
		// is never sent, so the device still sees an incomplete upload.
		sizeUnknown bool
	}{
		{"file with size", workflows.Firmware{Version: targetVersion, URL: url, SHA256: other.sha256, Size: im.size}, false},
		{"file without size", workflows.Firmware{Version: targetVersion, URL: url, SHA256: other.sha256}, false},
		{"chunked http with size", workflows.Firmware{Version: targetVersion, URL: fw.url(), SHA256: other.sha256, Size: im.size}, false},
		{"chunked http without size", workflows.Firmware{Version: targetVersion, URL: fw.url(), SHA256: other.sha256}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := startFleet(t, fleet.Config{Reboot: 10 * time.Millisecond})
			_, err := newHarness(t).push(pushRequest(deviceURL(srv, firstDevice), tc.fw))
			requirePermanent(t, err, workflows.ErrChecksumMismatch, "sha256 "+im.sha256, "the spec says "+other.sha256)
			time.Sleep(50 * time.Millisecond) // past any reboot, had there been an install
			st := deviceStats(t, f, firstDevice)
			require.EqualValues(t, 1, st.Uploads)
			if tc.sizeUnknown {
				require.LessOrEqual(t, st.Bytes, im.size)
			} else {
				require.Less(t, st.Bytes, im.size, "the device never got the whole image")
			}
			require.Zero(t, st.Installs, "an incomplete or wrong upload installs nothing")
			require.Equal(t, oldVersion, st.Version)
		})
	}
}

func TestPushFirmwareDigestIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	im := newImage(t, 22, 1<<20)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, nil)
	fw := im.firmware(url)
	fw.SHA256 = strings.ToUpper(im.sha256)
	res := newHarness(t).mustPush(pushRequest(dev.address(), fw))
	require.Equal(t, im.size, res.BytesSent)
	require.Equal(t, im.sha256, dev.recorded()[0].sha256)
}

func TestPushFirmwareSizeMismatch(t *testing.T) {
	t.Parallel()
	im := newImage(t, 23, 1<<20)
	_, url := writeImage(t, im)
	sized := newFirmwareServer(t, im, nil)
	chunked := newFirmwareServer(t, im, func(s *firmwareServer) { s.chunked = true })

	for _, tc := range []struct {
		name     string
		url      string
		size     int64
		want     []string
		uploaded bool
	}{
		{"file larger than spec", url, im.size - 1, []string{"is 1048576 bytes, the spec says 1048575"}, false},
		{"file smaller than spec", url, im.size + 1, []string{"is 1048576 bytes, the spec says 1048577"}, false},
		{"http Content-Length differs", sized.url(), im.size + 100, []string{"is 1048576 bytes, the spec says 1048676"}, false},
		{"chunked http shorter than spec", chunked.url(), im.size + 100, []string{"ended after 1048576 of its 1048676 bytes"}, true},
		{"chunked http longer than spec", chunked.url(), im.size - 100, []string{"longer than its 1048476 bytes"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, nil)
			fw := im.firmware(tc.url)
			fw.Size = tc.size
			_, err := newHarness(t).push(pushRequest(dev.address(), fw))
			requirePermanent(t, err, workflows.ErrChecksumMismatch, tc.want...)
			ups := dev.recorded()
			if !tc.uploaded {
				require.Empty(t, ups, "refused before any upload")
				return
			}
			require.Eventually(t, func() bool { return len(dev.recorded()) == 1 }, 2*time.Second, 10*time.Millisecond)
			up := dev.recorded()[0]
			// The upload declared tc.size bytes and never delivered them all:
			// the device reads an incomplete body and installs nothing.
			require.Less(t, up.bytes, tc.size, "the device never got a complete upload")
			require.Error(t, up.err)
		})
	}
}

// With neither Content-Length nor spec size, the upload is chunked and
// the image still arrives intact.
func TestPushFirmwareUnknownSize(t *testing.T) {
	t.Parallel()
	im := newImage(t, 24, 1<<20+1)
	fw := newFirmwareServer(t, im, func(s *firmwareServer) { s.chunked = true })
	dev := newFakeDevice(t, nil)
	spec := im.firmware(fw.url())
	spec.Size = 0
	res := newHarness(t).mustPush(pushRequest(dev.address(), spec))
	require.Equal(t, im.size, res.BytesSent)
	ups := dev.recorded()
	require.Len(t, ups, 1)
	require.EqualValues(t, -1, ups[0].contentLength, "size unknown: chunked upload")
	require.Equal(t, im.size, ups[0].bytes)
	require.Equal(t, im.sha256, ups[0].sha256)
}

func TestPushFirmwareSourceErrors(t *testing.T) {
	t.Parallel()
	im := newImage(t, 25, 4<<10)
	missing := filepath.Join(t.TempDir(), "nope.bin")
	notFound := newFirmwareServer(t, im, func(s *firmwareServer) { s.status = http.StatusNotFound })
	forbidden := newFirmwareServer(t, im, func(s *firmwareServer) { s.status = http.StatusForbidden })
	down := newFirmwareServer(t, im, func(s *firmwareServer) { s.status = http.StatusServiceUnavailable })
	busy := newFirmwareServer(t, im, func(s *firmwareServer) { s.status = http.StatusTooManyRequests; s.retry = "12" })
	goneURL := deadServer(t) + "/fw.bin"

	type check func(t *testing.T, err error)
	permanentCheck := func(parts ...string) check {
		return func(t *testing.T, err error) { requirePermanent(t, err, workflows.ErrFirmwareSource, parts...) }
	}
	for _, tc := range []struct {
		name  string
		url   string
		check check
	}{
		{"missing file", "file://" + missing, permanentCheck("not readable", "nope.bin")},
		{"directory", "file://" + t.TempDir(), func(t *testing.T, err error) {
			requireTransient(t, err, "reading the firmware image failed", "is a directory")
		}},
		{"unsupported scheme", "ftp://example.com/fw.bin", permanentCheck("scheme ftp")},
		{"bad url", "http://[::1", permanentCheck("firmware url")},
		{"http 404", notFound.url(), func(t *testing.T, err error) {
			requirePermanent(t, err, workflows.ErrFirmwareSource, "404", notFound.url())
			require.EqualValues(t, 1, notFound.gets.Load())
		}},
		{"http 403", forbidden.url(), permanentCheck("403")},
		{"http 503", down.url(), func(t *testing.T, err error) {
			ae := requireTransient(t, err, "firmware server answered 503", "(attempt 1)")
			require.Zero(t, ae.NextRetryDelay())
		}},
		{"http 429", busy.url(), func(t *testing.T, err error) {
			ae := requireTransient(t, err, "firmware server answered 429")
			require.Equal(t, 12*time.Second, ae.NextRetryDelay())
		}},
		{"http unreachable", goneURL, func(t *testing.T, err error) {
			requireTransient(t, err, "firmware server unreachable")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, nil)
			fw := im.firmware(tc.url)
			_, err := newHarness(t).push(pushRequest(dev.address(), fw))
			tc.check(t, err)
			for _, up := range dev.recorded() {
				require.Less(t, up.bytes, im.size, "no whole upload without an image")
			}
			if tc.name != "directory" { // opens fine, fails on the first read
				require.Empty(t, dev.recorded(), "no upload without an image")
			}
		})
	}
}

// A firmware server that dies mid-stream is a transient problem of the
// firmware source, not of the device, and the device installs nothing.
func TestPushFirmwareSourceFailsMidStream(t *testing.T) {
	t.Parallel()
	im := newImage(t, 26, 2<<20)
	fw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(im.size, 10))
		_, _ = io.CopyN(w, im.reader(), im.size/2)
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(fw.Close)
	f, srv := startFleet(t, fleet.Config{Reboot: 10 * time.Millisecond})

	_, err := newHarness(t).push(pushRequest(deviceURL(srv, firstDevice), im.firmware(fw.URL+"/fw.bin")))
	ae := requireTransient(t, err, "reading the firmware image failed", "unexpected EOF", "(attempt 1)")
	require.NotContains(t, ae.Message(), "device unreachable", "the device did nothing wrong")
	time.Sleep(50 * time.Millisecond)
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Uploads)
	require.Less(t, st.Bytes, im.size)
	require.Zero(t, st.Installs)
}
