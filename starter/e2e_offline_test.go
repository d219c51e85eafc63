//go:build e2e

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// offlineSpec lets unreachable devices wait two minutes to come back.
func offlineSpec(t *testing.T, id string, devices *fleetSim) string {
	image, _ := firmwareImage(t, 16<<10)
	return writeSpec(t, workflows.Spec{
		ID:        id,
		Inventory: devices.inventory(),
		Firmware:  workflows.Firmware{Version: "2.0.0", URL: image},
		Device: workflows.DevicePolicy{
			WaitOnline: "2m",
			Retry:      workflows.RetrySpec{InitialInterval: "100ms", MaximumAttempts: 2},
		},
	})
}

// assertOfflineCameBack: every device updated once, and the offline ones
// are listed as such in the report and in status.
func assertOfflineCameBack(t *testing.T, s *stack, id string, devices *fleetSim, offline int) {
	t.Helper()
	st := devices.stats(t)
	for _, d := range st.Devices {
		assert.Equal(t, "2.0.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
	}
	r := s.result(id, time.Minute)
	assert.Equal(t, workflows.StatusCompleted, r.Status)
	assert.Equal(t, offline, r.Offline)
	for _, o := range r.OfflineIDs {
		assert.Equal(t, workflows.OutcomeUpdated, o.Outcome, o.DeviceID)
	}
	out, code := s.starter("status", id)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "offline when their turn came (")
}

// 20% of the fleet is offline when the rollout starts; the devices come
// back 8s later and call the worker's check-in endpoint, which wakes their
// waiting DeviceUpdates at once.
func TestE2EOfflineDevicesCheckInOverHTTP(t *testing.T) {
	s := newStack(t, sharedServer)
	checkin := "127.0.0.1:" + freePort()
	s.startWorkerWith("--checkin-listen", checkin)
	devices := startFleet(t, "--devices", "50", "--version", "1.0.0", "--reboot", "100ms",
		"--offline", "0.2", "--online-after", "8s", "--checkin", "http://"+checkin+"/checkin")

	out, code := s.starter("start", "--spec", offlineSpec(t, "offline-http", devices), "--wait")
	require.Equal(t, 0, code, out)
	assertOfflineCameBack(t, s, "offline-http", devices, 10)
	waitFor(t, 10*time.Second, "devicemock to report the check-ins", func() bool {
		return strings.Contains(devices.proc.output(), "10 offline devices came back and checked in")
	})
}

// Devices that come back without checking in are reported by hand with
// `starter checkin`; nothing waits for the one-minute re-probe.
func TestE2EOfflineDevicesCheckInByStarter(t *testing.T) {
	s := newStack(t, sharedServer)
	s.startWorker()
	devices := startFleet(t, "--devices", "20", "--version", "1.0.0", "--reboot", "100ms",
		"--offline", "0.2", "--online-after", "10s")
	out, code := s.starter("start", "--spec", offlineSpec(t, "offline-manual", devices))
	require.Equal(t, 0, code, out)

	var offline []string
	for _, d := range devices.stats(t).Devices {
		if d.Fault == fleet.FaultOffline {
			offline = append(offline, d.ID)
		}
	}
	waitFor(t, 30*time.Second, "the online devices done and the offline ones waiting", func() bool {
		r, ok := s.progress("offline-manual")
		return ok && r.Counts.Done() == 20-len(offline) && r.Running == len(offline)
	})
	for _, id := range offline { // back, but nobody told the rollout
		waitFor(t, 20*time.Second, id+" to answer again", func() bool {
			resp, err := http.Get(devices.url + "/devices/" + id + "/version")
			if err == nil {
				_ = resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
	for _, id := range offline {
		out, code = s.starter("checkin", id)
		require.Equal(t, 0, code, out)
		assert.Equal(t, "check-in of "+id+" recorded\n", out)
	}
	out, code = s.starter("watch", "offline-manual")
	require.Equal(t, 0, code, out)
	assertOfflineCameBack(t, s, "offline-manual", devices, len(offline))
}
