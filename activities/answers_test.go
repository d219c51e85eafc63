package activities_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// TestPushFirmwareAnswerClasses drives every class of answer to
// POST /update from a device that read the whole upload.
func TestPushFirmwareAnswerClasses(t *testing.T) {
	t.Parallel()
	im := newImage(t, 10, 200<<10)
	_, url := writeImage(t, im)

	type check func(t *testing.T, res workflows.PushResult, err error)
	permanentCheck := func(typ string, parts ...string) check {
		return func(t *testing.T, _ workflows.PushResult, err error) { requirePermanent(t, err, typ, parts...) }
	}
	transientCheck := func(parts ...string) check {
		return func(t *testing.T, _ workflows.PushResult, err error) {
			ae := requireTransient(t, err, parts...)
			require.Zero(t, ae.NextRetryDelay(), "no Retry-After: the retry policy's backoff applies")
		}
	}
	cases := []struct {
		code   int
		header map[string]string
		body   string
		check  check
	}{
		{202, nil, `{"status":"accepted"}`, func(t *testing.T, res workflows.PushResult, err error) {
			require.NoError(t, err)
			require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)
		}},
		{200, nil, `{"status":"already-installed"}`, func(t *testing.T, res workflows.PushResult, err error) {
			require.NoError(t, err)
			require.Equal(t, workflows.PushResult{AlreadyInstalled: true, PreviousVersion: oldVersion, BytesSent: im.size}, res)
		}},
		{200, nil, `{"status":"ok"}`, permanentCheck(workflows.ErrBadDeviceAnswer, `"ok"`, "already-installed")},
		{200, nil, `not json`, permanentCheck(workflows.ErrBadDeviceAnswer, "200")},
		{422, nil, `{"error":"checksum mismatch"}`, permanentCheck(workflows.ErrChecksumMismatch, "422", "checksum mismatch", "image refused")},
		{400, nil, `{"error":"bad headers"}`, permanentCheck(workflows.ErrDeviceRefused, "400 Bad Request", "bad headers")},
		{401, nil, `{"error":"who are you"}`, permanentCheck(workflows.ErrDeviceRefused, "401 Unauthorized")},
		{403, nil, ``, permanentCheck(workflows.ErrDeviceRefused, "403 Forbidden")},
		{404, nil, ``, permanentCheck(workflows.ErrDeviceRefused, "404 Not Found")},
		{413, nil, ``, permanentCheck(workflows.ErrDeviceRefused, "413")},
		{408, nil, ``, transientCheck("408", "(attempt 1)")},
		{500, nil, `{"error":"boom"}`, transientCheck("500", "boom", "(attempt 1)")},
		{502, nil, ``, transientCheck("502", "(attempt 1)")},
		{503, nil, `{"error":"installing"}`, transientCheck("503", "(attempt 1)")},
		{504, nil, ``, transientCheck("504", "(attempt 1)")},
		{429, map[string]string{"Retry-After": "7"}, ``, func(t *testing.T, _ workflows.PushResult, err error) {
			ae := requireTransient(t, err, "429", "(attempt 1)")
			require.Equal(t, 7*time.Second, ae.NextRetryDelay(), "Retry-After is honoured")
		}},
		{429, map[string]string{"Retry-After": "in 30s"}, ``, // an HTTP date, made at answer time
			func(t *testing.T, _ workflows.PushResult, err error) {
				ae := requireTransient(t, err, "429")
				require.InDelta(t, 30*time.Second, ae.NextRetryDelay(), float64(3*time.Second), "Retry-After as an HTTP date")
			}},
		{429, nil, ``, transientCheck("429")},
		{302, map[string]string{"Location": "/devices/fake/elsewhere"}, ``,
			permanentCheck(workflows.ErrBadDeviceAnswer, "302", "/devices/fake/elsewhere", "not followed")},
		{307, map[string]string{"Location": "/devices/fake/elsewhere"}, ``,
			permanentCheck(workflows.ErrBadDeviceAnswer, "307", "not followed")},
	}
	for _, tc := range cases {
		name := strconv.Itoa(tc.code) + " " + tc.body
		if tc.header != nil {
			name += " " + tc.header["Retry-After"] + tc.header["Location"]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
					_, _ = io.Copy(io.Discard, body)
					for k, v := range tc.header {
						if v == "in 30s" {
							v = time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
						}
						w.Header().Set(k, v)
					}
					answer(w, tc.code, tc.body)
				}
			})
			res, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
			tc.check(t, res, err)
			ups := dev.recorded()
			require.Len(t, ups, 1, "one upload per attempt")
			require.Equal(t, im.size, ups[0].bytes)
			require.Zero(t, dev.other.Load(), "a redirect is not followed")
		})
	}
}

// TestPushFirmwareEarlyAnswer: a device may refuse before reading the body.
func TestPushFirmwareEarlyAnswer(t *testing.T) {
	t.Parallel()
	im := newImage(t, 11, 8<<20)
	_, url := writeImage(t, im)
	for _, tc := range []struct {
		code  int
		check func(t *testing.T, res workflows.PushResult, err error)
	}{
		{403, func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrDeviceRefused, "403")
		}},
		{200, func(t *testing.T, res workflows.PushResult, err error) {
			require.NoError(t, err)
			require.True(t, res.AlreadyInstalled)
			require.Equal(t, oldVersion, res.PreviousVersion)
			require.Less(t, res.BytesSent, im.size, "BytesSent counts what left before the answer")
		}},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.updateFn = func(w http.ResponseWriter, _ *http.Request, _ *countingBody) {
					if tc.code == 200 {
						answer(w, 200, `{"status":"already-installed"}`)
						return
					}
					answer(w, tc.code, `{"error":"upload refused"}`)
				}
			})
			res, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
			tc.check(t, res, err)
		})
	}
}

func TestTransientMessageNamesTheAttempt(t *testing.T) {
	t.Parallel()
	im := newImage(t, 12, 1<<10)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
			_, _ = io.Copy(io.Discard, body)
			answer(w, http.StatusServiceUnavailable, `{"error":"temporarily unavailable"}`)
		}
	})
	_, err := newHarness(t, withAttempt(4)).push(pushRequest(dev.address(), im.firmware(url)))
	requireTransient(t, err, "push: device answered 503 Service Unavailable", "temporarily unavailable", "(attempt 4)")
}

// TestProbeAnswers covers GET /version before the upload: nothing is
// uploaded when the probe fails or finds the target version.
func TestProbeAnswers(t *testing.T) {
	t.Parallel()
	im := newImage(t, 13, 1<<10)
	_, url := writeImage(t, im)

	versionAnswer := func(code int, header, body string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			if header != "" {
				w.Header().Set("Location", header)
			}
			answer(w, code, body)
		}
	}
	for _, tc := range []struct {
		name  string
		fn    func(w http.ResponseWriter, r *http.Request)
		check func(t *testing.T, res workflows.PushResult, err error)
	}{
		{"garbage json", versionAnswer(200, "", `<html>hello</html>`), func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "probe", "/version")
		}},
		{"no version field", versionAnswer(200, "", `{"state":"idle"}`), func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "/version")
		}},
		{"redirect", versionAnswer(301, "/devices/fake/elsewhere", ``), func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "301", "not followed")
		}},
		{"unknown device", versionAnswer(404, "", `{"error":"unknown device"}`), func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrDeviceRefused, "probe", "404", "unknown device")
		}},
		{"rebooting", versionAnswer(503, "", `{"error":"installing"}`), func(t *testing.T, _ workflows.PushResult, err error) {
			requireTransient(t, err, "probe", "503")
		}},
		{"busy", versionAnswer(200, "", `{"version":"1.0.0","state":"installing"}`), func(t *testing.T, _ workflows.PushResult, err error) {
			requireTransient(t, err, "busy", "installing")
		}},
		{"already on target", versionAnswer(200, "", `{"version":"2.0.0","state":"idle"}`), func(t *testing.T, res workflows.PushResult, err error) {
			require.NoError(t, err)
			require.Equal(t, workflows.PushResult{AlreadyInstalled: true, PreviousVersion: targetVersion}, res)
		}},
		{"already on target, no state", versionAnswer(200, "", `{"version":"2.0.0"}`), func(t *testing.T, res workflows.PushResult, err error) {
			require.NoError(t, err)
			require.True(t, res.AlreadyInstalled)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) { d.versionFn = tc.fn })
			res, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
			tc.check(t, res, err)
			require.Empty(t, dev.recorded(), "no upload")
			require.Zero(t, dev.other.Load(), "redirects are not followed")
		})
	}
}

func TestUnreachableDeviceIsTransient(t *testing.T) {
	t.Parallel()
	addr := deadServer(t) + "/devices/fake"
	im := newImage(t, 14, 1<<10)
	_, url := writeImage(t, im)
	_, err := newHarness(t).push(pushRequest(addr, im.firmware(url)))
	requireTransient(t, err, "probe: device unreachable", "(attempt 1)")

	_, err = newHarness(t).push(pushRequest("http://bad host/devices/x", im.firmware(url)))
	requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "bad device address")
}
