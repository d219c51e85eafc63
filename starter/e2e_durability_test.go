//go:build e2e

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// durabilitySpec is a rollout slow enough to be interrupted at chosen
// moments: two phases with a soak between them, bandwidth-capped pushes,
// a reboot of a second, and heartbeat timeouts short enough that work
// lost with a worker is retried quickly.
func durabilitySpec(t *testing.T, id string, devices *fleetSim) string {
	image, _ := firmwareImage(t, 256<<10)
	return writeSpec(t, workflows.Spec{
		ID:            id,
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "3.0.0", URL: image},
		MaxConcurrent: 20,
		Phases: []workflows.Phase{
			{Name: "first", Percent: 50, Soak: "6s"},
			{Name: "rest", Percent: 100},
		},
		Device: workflows.DevicePolicy{
			HeartbeatTimeout: "3s",
			Retry:            workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "2s", MaximumAttempts: 20},
		},
	})
}

// assertExactlyOnce: every device on the target version with one
// install, and the result counts each device once.
func assertExactlyOnce(t *testing.T, s *stack, id string, devices *fleetSim, n int) {
	t.Helper()
	r := s.result(id, 3*time.Minute)
	assert.Equal(t, workflows.StatusCompleted, r.Status, r.Reason)
	assert.Equal(t, n, r.Selected)
	assert.Equal(t, n, r.Started)
	assert.Equal(t, n, r.Counts.Succeeded+r.Counts.AlreadyCurrent, "each device reported once")
	assert.Zero(t, r.Counts.Failed+r.Counts.Cancelled, r.Failures)
	st := devices.stats(t)
	require.Len(t, st.Devices, n)
	for _, d := range st.Devices {
		assert.Equal(t, "3.0.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, "%s installed %d times", d.ID, d.Installs)
	}
	waitFor(t, 30*time.Second, "one completed DeviceUpdate per device", func() bool {
		updates := s.deviceUpdates(id)
		for _, status := range updates {
			if status != "Completed" {
				return false
			}
		}
		return len(updates) == n
	})
}

// kill -9 the worker during pushes, during verifies, between phases (while
// the first soaks) and while the rollout is paused; a new worker each time
// finishes it without losing a device or flashing one twice.
func TestE2EWorkerCrashes(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "120", "--version", "2.0.0", "--reboot", "1500ms", "--bandwidth", "1048576")
	worker := s.startWorker()
	out, code := s.starter("start", "--spec", durabilitySpec(t, "crash-120", devices))
	require.Equal(t, 0, code, out)

	// 1. During pushes: uploads under way, nothing installed yet.
	waitFor(t, 30*time.Second, "pushes in flight", func() bool {
		st := devices.stats(t)
		return st.Totals.Bytes > 0 && st.Totals.Installs == 0
	})
	worker.kill()
	time.Sleep(time.Second)
	worker = s.startWorker()

	// 2. During verifies: a good part of the first phase installed or
	// rebooting.
	waitFor(t, 90*time.Second, "devices installing", func() bool {
		return devices.stats(t).Totals.Installs >= 30
	})
	worker.kill()
	time.Sleep(time.Second)
	worker = s.startWorker()

	// 3. Between phases: the first one soaks (a server-side timer).
	waitFor(t, 90*time.Second, "the first phase to soak", func() bool {
		r, ok := s.progress("crash-120")
		return ok && r.Status == workflows.StatusSoaking
	})
	worker.kill()
	time.Sleep(time.Second)
	worker = s.startWorker()

	// 4. While paused in the second phase.
	waitFor(t, 60*time.Second, "the second phase to start", func() bool {
		r, ok := s.progress("crash-120")
		return ok && r.Started > 60
	})
	out, code = s.starter("pause", "crash-120")
	require.Equal(t, 0, code, out)
	worker.kill()
	time.Sleep(time.Second)
	s.startWorker()
	out, code = s.starter("resume", "crash-120")
	require.Equal(t, 0, code, out)

	assertExactlyOnce(t, s, "crash-120", devices, 120)
}

// Stop the dev server mid-rollout and start it again on the same
// database: the rollout completes with the same guarantees.
func TestE2EServerRestart(t *testing.T) {
	server, err := startDevServer(t.TempDir()+"/restart.db", "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.server.Stop() })
	s := newStack(t, server)
	devices := startFleet(t, "--devices", "100", "--version", "2.0.0", "--reboot", "1s", "--bandwidth", "2097152")
	s.startWorker()
	out, code := s.starter("start", "--spec", durabilitySpec(t, "restart-100", devices))
	require.Equal(t, 0, code, out)

	waitFor(t, 60*time.Second, "a third of the fleet installed", func() bool {
		return devices.stats(t).Totals.Installs >= 33
	})
	require.NoError(t, server.server.Stop())
	time.Sleep(2 * time.Second)
	restarted, err := startDevServer(server.dbFile, server.hostPort)
	require.NoError(t, err)
	server.server = restarted.server

	assertExactlyOnce(t, s, "restart-100", devices, 100)
}

// The starter killed during --wait loses nothing: watch re-attaches and
// reports the same rollout to its end.
func TestE2EStarterKilledDuringWait(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "100", "--version", "2.0.0", "--reboot", "500ms", "--bandwidth", "4194304")
	s.startWorker()
	starter := s.startStarter("start", "--spec", durabilitySpec(t, "detach-100", devices), "--wait")
	waitFor(t, 60*time.Second, "devices installing", func() bool {
		return devices.stats(t).Totals.Installs >= 10
	})
	starter.kill()
	assert.Contains(t, starter.output(), "started rollout detach-100")

	out, code := s.starter("watch", "detach-100")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "rollout detach-100 completed")
	assert.Contains(t, out, "100 devices")
	assertExactlyOnce(t, s, "detach-100", devices, 100)
}
