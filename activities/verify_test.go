package activities_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func verifyRequest(address string, within time.Duration) workflows.VerifyRequest {
	return workflows.VerifyRequest{DeviceID: firstDevice, Address: address, Version: targetVersion,
		PreviousVersion: oldVersion, Within: within}
}

func TestVerifyVersionAfterReboot(t *testing.T) {
	t.Parallel()
	const reboot = 600 * time.Millisecond
	im := newImage(t, 40, 256<<10)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Reboot: reboot})
	addr := deviceURL(srv, firstDevice)
	pushed := time.Now()
	newHarness(t).mustPush(pushRequest(addr, im.firmware(url)))

	h := newHarness(t)
	res, err := h.verify(verifyRequest(addr, 10*time.Second))
	require.NoError(t, err)
	require.Equal(t, workflows.VerifyResult{Version: targetVersion}, res)
	require.GreaterOrEqual(t, time.Since(pushed), reboot, "verified only once the reboot was over")
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Installs)
	require.Equal(t, targetVersion, st.Version)

	beats := h.hb.strings(t)
	require.NotEmpty(t, beats, "verify heartbeats while it waits")
	require.Contains(t, beats[0], "503", "what it waits for: %q", beats[0])
}

func TestVerifyVersionWaitsOutAnUnreachableDevice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		down   func(w http.ResponseWriter)
		expect string
	}{
		{"no answer", hangUp, "device unreachable"},
		{"503", func(w http.ResponseWriter) { answer(w, 503, `{"error":"installing"}`) }, "503"},
		{"429", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); answer(w, 429, "") }, "429"},
		{"busy state", func(w http.ResponseWriter) { answer(w, 200, `{"version":"1.0.0","state":"rebooting"}`) }, "device state rebooting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var polls atomic.Int64
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.versionFn = func(w http.ResponseWriter, _ *http.Request) {
					if polls.Add(1) <= 3 {
						tc.down(w)
						return
					}
					answer(w, 200, `{"version":"2.0.0","state":"idle"}`)
				}
			})
			h := newHarness(t)
			res, err := h.verify(verifyRequest(dev.address(), 10*time.Second))
			require.NoError(t, err)
			require.Equal(t, targetVersion, res.Version)
			require.EqualValues(t, 4, polls.Load())
			beats := h.hb.strings(t)
			require.Len(t, beats, 3, "one heartbeat per unsuccessful poll")
			require.Contains(t, beats[0], tc.expect)
		})
	}
}

func TestVerifyVersionWrongVersion(t *testing.T) {
	t.Parallel()

	t.Run("devicemock comes back on its previous version", func(t *testing.T) {
		t.Parallel()
		im := newImage(t, 41, 64<<10)
		_, url := writeImage(t, im)
		f, srv := startFleet(t, fleet.Config{WrongVersion: 1, Reboot: 300 * time.Millisecond})
		addr := deviceURL(srv, firstDevice)
		h := newHarness(t)
		h.mustPush(pushRequest(addr, im.firmware(url)))
		_, err := h.verify(verifyRequest(addr, 10*time.Second))
		requirePermanent(t, err, workflows.ErrWrongVersion,
			"restarted on its previous version 1.0.0", "expected 2.0.0", "rolled back")
		st := deviceStats(t, f, firstDevice)
		require.Equal(t, oldVersion, st.Version)
		require.EqualValues(t, 1, st.Installs)
	})

	t.Run("previous version after no answer", func(t *testing.T) {
		t.Parallel()
		var polls atomic.Int64
		dev := newFakeDevice(t, func(d *fakeDevice) {
			d.versionFn = func(w http.ResponseWriter, _ *http.Request) {
				if polls.Add(1) == 1 {
					hangUp(w)
					return
				}
				answer(w, 200, `{"version":"1.0.0","state":"idle"}`)
			}
		})
		_, err := newHarness(t).verify(verifyRequest(dev.address(), 10*time.Second))
		requirePermanent(t, err, workflows.ErrWrongVersion, "previous version 1.0.0", "expected 2.0.0")
		require.EqualValues(t, 2, polls.Load())
	})

	t.Run("a third version fails at once", func(t *testing.T) {
		t.Parallel()
		dev := newFakeDevice(t, func(d *fakeDevice) { d.version = "3.1.4" })
		_, err := newHarness(t).verify(verifyRequest(dev.address(), time.Minute))
		requirePermanent(t, err, workflows.ErrWrongVersion, "came back on version 3.1.4", "expected 2.0.0")
		require.Len(t, dev.probes(), 1, "no second poll")
	})
}

func TestVerifyVersionGivesUpAfterWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fn   func(w http.ResponseWriter, r *http.Request)
		last string
	}{
		{"never went down", nil, "still reports its previous version 1.0.0"},
		{"never came back", func(w http.ResponseWriter, _ *http.Request) { answer(w, 503, `{"error":"installing"}`) }, "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) { d.versionFn = tc.fn })
			start := time.Now()
			_, err := newHarness(t).verify(verifyRequest(dev.address(), time.Second))
			elapsed := time.Since(start)
			requirePermanent(t, err, workflows.ErrWrongVersion, "did not report version 2.0.0 within 1s", tc.last)
			require.GreaterOrEqual(t, elapsed, time.Second)
			// A hang detector, not a timing: it gives up long before a minute.
			require.Less(t, elapsed, time.Minute)
			require.Greater(t, len(dev.probes()), 2, "it kept polling until then")
		})
	}
}

func TestVerifyVersionPermanentAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		code  int
		body  string
		typ   string
		parts []string
	}{
		{"404", 404, `{"error":"unknown device"}`, workflows.ErrDeviceRefused, []string{"verify", "404", "unknown device"}},
		{"401", 401, ``, workflows.ErrDeviceRefused, []string{"401"}},
		{"403", 403, ``, workflows.ErrDeviceRefused, []string{"403"}},
		{"redirect", 302, ``, workflows.ErrBadDeviceAnswer, []string{"302", "not followed"}},
		{"garbage", 200, `{"version":`, workflows.ErrBadDeviceAnswer, []string{"/version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.versionFn = func(w http.ResponseWriter, _ *http.Request) {
					if tc.code == 302 {
						w.Header().Set("Location", "/devices/fake/elsewhere")
					}
					answer(w, tc.code, tc.body)
				}
			})
			_, err := newHarness(t).verify(verifyRequest(dev.address(), time.Minute))
			requirePermanent(t, err, tc.typ, tc.parts...)
			require.Len(t, dev.probes(), 1, "returns at once")
			require.Zero(t, dev.other.Load())
		})
	}
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
