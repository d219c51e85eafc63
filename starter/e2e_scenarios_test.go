//go:build e2e

package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// The six rollout scenarios of a POS fleet, end to end over a real server,
// on the ten terminals of testdata/pos-fleet.json: six online, three
// offline (devicemock leaves them unreachable) and one of unknown status,
// with versions from 2.0.9 to 2.4.0-rc.1.

const posFleet = "../testdata/pos-fleet.json"

// posScenario starts the fleet and a worker, and builds a spec for it.
func posScenario(t *testing.T, id string) (*stack, *fleetSim, workflows.Spec) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--fleet", posFleet, "--reboot", "200ms")
	s.startWorker()
	image, _ := firmwareImage(t, 16<<10)
	return s, devices, workflows.Spec{
		ID:        id,
		Inventory: devices.inventory(),
		Firmware:  workflows.Firmware{Version: "2.4.1", URL: image},
		Device: workflows.DevicePolicy{
			Retry: workflows.RetrySpec{InitialInterval: "100ms", MaximumAttempts: 2},
		},
	}
}

// updatedDevices lists the devices that installed the image, and checks
// none installed it twice.
func updatedDevices(t *testing.T, devices *fleetSim) []string {
	t.Helper()
	var ids []string
	for _, d := range devices.stats(t).Devices {
		require.LessOrEqual(t, d.Installs, int64(1), d.ID)
		if d.Installs == 1 {
			assert.Equal(t, "2.4.1", d.Version, d.ID)
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func untouched(t *testing.T, devices *fleetSim, ids ...string) {
	t.Helper()
	for _, d := range devices.stats(t).Devices {
		if slices.Contains(ids, d.ID) {
			assert.Zero(t, d.Uploads, "%s must not be touched", d.ID)
		}
	}
}

var onlinePOS = []string{"pos-bos-001", "pos-chi-001", "pos-nyc-001", "pos-nyc-002", "pos-phx-001", "pos-sea-001"}

// 1. An immediate security patch to every online terminal.
func TestE2EScenarioSecurityPatch(t *testing.T) {
	s, devices, spec := posScenario(t, "pos-security-patch")
	spec.Selector.Status = []string{"online"}
	out, code := s.starter("start", "--spec", writeSpec(t, spec), "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "6 devices, 6 updated")
	assert.Equal(t, onlinePOS, updatedDevices(t, devices))
	untouched(t, devices, "pos-la-001", "pos-chi-002", "pos-mia-001", "pos-den-001")
}

// 2. A scheduled rollout inside the 02:00-04:00 store-time window. The
// suite runs in real time, so it picks the zone where it is 02:xx now
// (the rollout runs) and one where it is 12:xx (it waits for the window).
func TestE2EScenarioMaintenanceWindow(t *testing.T) {
	s, devices, spec := posScenario(t, "pos-window-open")
	spec.Selector.Status = []string{"online"}
	spec.Window = &workflows.Window{Start: "02:00", Duration: "2h", Timezone: zoneWhereHourIs(2)}
	out, code := s.starter("start", "--spec", writeSpec(t, spec), "--wait")
	require.Equal(t, 0, code, out)
	assert.Equal(t, onlinePOS, updatedDevices(t, devices))

	closed := spec
	closed.ID = "pos-window-closed"
	closed.Firmware.Version = "2.4.2"
	closed.Window = &workflows.Window{Start: "02:00", Duration: "2h", Timezone: zoneWhereHourIs(12)}
	out, code = s.starter("start", "--spec", writeSpec(t, closed))
	require.Equal(t, 0, code, out)
	waitFor(t, 20*time.Second, "the rollout to wait for its window", func() bool {
		r, ok := s.progress("pos-window-closed")
		return ok && r.Status == workflows.StatusWaitingWindow
	})
	time.Sleep(time.Second)
	out, code = s.starter("status", "pos-window-closed")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "status    waiting-window")
	assert.Contains(t, out, "next window opens")
	r, _ := s.progress("pos-window-closed")
	assert.Zero(t, r.Started, "no device starts outside the window")
	assert.InDelta(t, 14*time.Hour, time.Until(r.NextWindow), float64(time.Hour), "next opening at 02:00 local: ~14h away")
	for _, d := range devices.stats(t).Devices {
		assert.NotEqual(t, "2.4.2", d.Version, d.ID)
	}
	out, code = s.starter("cancel", "pos-window-closed")
	require.Equal(t, 0, code, out)
	out, code = s.starter("watch", "pos-window-closed")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "6 cancelled")
}

// zoneWhereHourIs names a fixed-offset IANA zone whose local hour is now
// the given one (Etc/GMT-7 is UTC+7).
func zoneWhereHourIs(hour int) string {
	offset := (hour - time.Now().UTC().Hour() + 48) % 24
	if offset > 14 {
		offset -= 24
	}
	switch {
	case offset > 0:
		return fmt.Sprintf("Etc/GMT-%d", offset)
	case offset < 0:
		return fmt.Sprintf("Etc/GMT+%d", -offset)
	}
	return "Etc/GMT"
}

// 3. A progressive canary, 10% -> 50% -> 100% of the online terminals,
// each phase gated on every device succeeding and soaked before the next.
func TestE2EScenarioProgressiveCanary(t *testing.T) {
	s, devices, spec := posScenario(t, "pos-canary")
	spec.Selector.Status = []string{"online"}
	spec.Phases = []workflows.Phase{
		{Name: "canary", Percent: 10, MinSuccessPercent: 100, Soak: "2s"},
		{Name: "half", Percent: 50, MinSuccessPercent: 100, Soak: "1s"},
		{Name: "rest", Percent: 100, MinSuccessPercent: 100},
	}
	out, code := s.starter("start", "--spec", writeSpec(t, spec), "--dry-run")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "phase canary       1 devices (to 10%, gate 100% success, soak 2s)")
	assert.Contains(t, out, "phase half         2 devices")
	assert.Contains(t, out, "phase rest         3 devices")

	out, code = s.starter("start", "--spec", writeSpec(t, spec))
	require.Equal(t, 0, code, out)
	waitFor(t, 20*time.Second, "the canary to soak", func() bool {
		r, ok := s.progress("pos-canary")
		return ok && r.Status == workflows.StatusSoaking
	})
	assert.Len(t, updatedDevices(t, devices), 1, "only the canary is updated while it soaks")

	out, code = s.starter("watch", "pos-canary")
	require.Equal(t, 0, code, out)
	r := s.result("pos-canary", time.Minute)
	require.Len(t, r.Phases, 3)
	for i, want := range []int{1, 2, 3} {
		assert.Equal(t, want, r.Phases[i].Devices, r.Phases[i].Name)
		assert.Equal(t, want, r.Phases[i].Counts.Succeeded, r.Phases[i].Name)
		assert.Equal(t, workflows.PhasePassed, r.Phases[i].State, r.Phases[i].Name)
	}
	assert.Equal(t, onlinePOS, updatedDevices(t, devices))
}

// 4. A region-only update: the northeast stores.
func TestE2EScenarioRegionOnly(t *testing.T) {
	s, devices, spec := posScenario(t, "pos-northeast")
	out, code := s.starter("start", "--id", spec.ID, "--inventory", spec.Inventory, "--firmware", spec.Firmware.URL,
		"--version", "2.4.1", "--tag", "region=northeast", "--wait")
	require.Equal(t, 0, code, out)
	assert.Equal(t, []string{"pos-bos-001", "pos-nyc-001", "pos-nyc-002"}, updatedDevices(t, devices))
}

// 5. Upgrade only the online terminals below 2.2.0.
func TestE2EScenarioVersionBelow(t *testing.T) {
	s, devices, spec := posScenario(t, "pos-below-2.2")
	out, code := s.starter("start", "--id", spec.ID, "--inventory", spec.Inventory, "--firmware", spec.Firmware.URL,
		"--version", "2.4.1", "--version-below", "2.2.0", "--status", "online", "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "3 devices, 3 updated")
	assert.Equal(t, []string{"pos-bos-001", "pos-chi-001", "pos-sea-001"}, updatedDevices(t, devices))
}

// 6. A rollout to the whole fleet whose canary meets an offline terminal:
// the gate halts it, nothing more starts; the operator resumes it and the
// rest goes out (the other offline terminals fail, named in the summary).
func TestE2EScenarioGateHaltThenResume(t *testing.T) {
	s, devices, spec := posScenario(t, "")
	spec.ID = rolloutWithOfflineCanary(t, devices)
	spec.Phases = []workflows.Phase{
		{Name: "canary", Percent: 30, MinSuccessPercent: 100},
		{Name: "rest", Percent: 100},
	}
	out, code := s.starter("start", "--spec", writeSpec(t, spec))
	require.Equal(t, 0, code, out)
	waitFor(t, 30*time.Second, "the gate to halt the rollout", func() bool {
		r, ok := s.progress(spec.ID)
		return ok && r.Status == workflows.StatusHalted
	})
	out, code = s.starter("status", spec.ID)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "status    halted")
	assert.Regexp(t, `phase canary: \d of 3 devices succeeded \(\d+\.\d%\), below its gate of 100%`, out)
	time.Sleep(time.Second)
	halted, _ := s.progress(spec.ID)
	assert.Equal(t, 3, halted.Started, "nothing starts while halted")

	out, code = s.starter("resume", spec.ID)
	require.Equal(t, 0, code, out)
	out, code = s.starter("watch", spec.ID)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "completed-with-failures")
	for _, offline := range []string{"pos-la-001", "pos-chi-002", "pos-mia-001"} {
		assert.Contains(t, out, offline+"  probe: device unreachable")
	}
	r := s.result(spec.ID, time.Minute)
	assert.Equal(t, workflows.PhaseOverridden, r.Phases[0].State)
	assert.Equal(t, 7, r.Counts.Succeeded)
	assert.Len(t, updatedDevices(t, devices), 7)
}

// rolloutWithOfflineCanary picks a rollout ID whose canary (the first 3 of
// 10 devices in rollout order) holds an offline terminal, so the scenario
// is deterministic.
func rolloutWithOfflineCanary(t *testing.T, devices *fleetSim) string {
	offline := map[string]bool{}
	var ids []string
	for _, d := range devices.stats(t).Devices {
		ids = append(ids, d.ID)
		offline[d.ID] = d.Fault == fleet.FaultOffline
	}
	for n := 1; n < 100; n++ {
		id := fmt.Sprintf("pos-gate-%d", n)
		slices.SortFunc(ids, func(a, b string) int {
			return strings.Compare(workflows.OrderKey(id, a), workflows.OrderKey(id, b))
		})
		if offline[ids[0]] || offline[ids[1]] || offline[ids[2]] {
			return id
		}
	}
	t.Fatal("no rollout ID puts an offline terminal in the canary")
	return ""
}
