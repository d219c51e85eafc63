//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A rollout to 200 devices over the real server: every device ends on the
// new version with exactly one install, and each has its DeviceUpdate.
func TestE2EFullRollout(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "200", "--version", "2.3.1", "--reboot", "300ms")
	s.startWorker()
	image, _ := firmwareImage(t, 256<<10)

	out, code := s.starter("start", "--id", "full-200", "--inventory", devices.inventory(),
		"--firmware", image, "--version", "2.4.0", "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "rollout full-200 completed")
	assert.Contains(t, out, "200 updated, 0 already current, 0 failed")

	st := devices.stats(t)
	require.Len(t, st.Devices, 200)
	for _, d := range st.Devices {
		assert.Equal(t, "2.4.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
		assert.EqualValues(t, 1, d.Uploads, d.ID)
	}

	r := s.result("full-200", time.Minute)
	assert.Equal(t, workflows.StatusCompleted, r.Status)
	assert.Equal(t, workflows.Counts{Succeeded: 200}, r.Counts)
	waitFor(t, 30*time.Second, "200 completed DeviceUpdate workflows in visibility", func() bool {
		updates := s.deviceUpdates("full-200")
		completed := 0
		for id, status := range updates {
			if strings.HasPrefix(id, "full-200/dev-") && status == "Completed" {
				completed++
			}
		}
		return completed == 200
	})
}

// Devices that answer 503 to their first two uploads are retried with
// backoff and end updated; the rollout succeeds.
func TestE2ETransientFailuresRecover(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "200", "--version", "2.3.1", "--reboot", "300ms", "--fail-5xx", "0.3", "--seed", "3")
	s.startWorker()
	image, _ := firmwareImage(t, 64<<10)
	spec := writeSpec(t, workflows.Spec{
		ID:        "flaky-200",
		Inventory: devices.inventory(),
		Firmware:  workflows.Firmware{Version: "2.4.0", URL: image},
		Device:    workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "200ms"}},
	})

	out, code := s.starter("start", "--spec", spec, "--wait")
	require.Equal(t, 0, code, out)

	flaky := 0
	for _, d := range devices.stats(t).Devices {
		assert.Equal(t, "2.4.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
		if d.Fault == fleet.FaultFail5xx {
			flaky++
			assert.EqualValues(t, 3, d.Uploads, "%s: two 503s then success", d.ID)
		}
	}
	assert.Equal(t, 60, flaky)
}

// Devices that refuse the upload with 403 fail at once: one upload each,
// the starter exits 1 and names them.
func TestE2EPermanentRefusals(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "200", "--version", "2.3.1", "--reboot", "300ms", "--fail-4xx", "0.05", "--seed", "9")
	s.startWorker()
	image, _ := firmwareImage(t, 64<<10)

	out, code := s.starter("start", "--id", "refused-200", "--inventory", devices.inventory(),
		"--firmware", image, "--version", "2.4.0", "--wait")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "rollout refused-200 completed-with-failures")

	var refused []string
	for _, d := range devices.stats(t).Devices {
		if d.Fault == fleet.FaultFail4xx {
			refused = append(refused, d.ID)
			assert.EqualValues(t, 1, d.Uploads, "%s: a 4xx costs one attempt", d.ID)
			assert.EqualValues(t, 0, d.Installs, d.ID)
			assert.Contains(t, out, d.ID+"  push: device answered 403 Forbidden")
		} else {
			assert.EqualValues(t, 1, d.Installs, d.ID)
		}
	}
	require.Len(t, refused, 10)

	out, code = s.starter("status", "refused-200", "--json")
	require.Equal(t, 1, code, out)
	var r workflows.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, workflows.Counts{Succeeded: 190, Failed: 10}, r.Counts)
	var failed []string
	for _, f := range r.Failures {
		failed = append(failed, f.DeviceID)
	}
	assert.ElementsMatch(t, refused, failed)

	// Every failure, page by page, from visibility: 10 failed, 4 a page.
	var paged []string
	for page := 1; page <= 3; page++ {
		waitFor(t, 20*time.Second, "failed device updates in visibility", func() bool {
			out, code = s.starter("status", "refused-200", "--failures", "--page", fmt.Sprint(page), "--page-size", "4")
			return code == 0 && strings.Contains(out, "(10 failed, 4 per page)")
		})
		assert.Contains(t, out, fmt.Sprintf("failed devices of refused-200: page %d of 3", page))
		for _, line := range scanLines(out)[1:] {
			fields := strings.Fields(line)
			paged = append(paged, fields[0])
			assert.Contains(t, line, "push: device answered 403 Forbidden")
		}
	}
	assert.ElementsMatch(t, refused, paged)
}

// The stock temporal CLI starts a rollout from the same spec file and
// queries its progress; the starter watches it; search attributes find
// the rollout and its device updates.
func TestE2EStockTemporalCLI(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "30", "--version", "1.0.0", "--reboot", "200ms")
	s.startWorker()
	image, sum := firmwareImage(t, 32<<10)
	spec := writeSpec(t, workflows.Spec{
		ID:            "stock-cli",
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "1.1.0", URL: "file://" + image, SHA256: sum},
		MaxConcurrent: 5,
	})
	cli, err := temporalCLI()
	require.NoError(t, err)
	temporal := func(args ...string) string {
		out, err := execOutput(cli, append(args, "--address", s.server.hostPort)...)
		require.NoError(t, err, out)
		return out
	}

	temporal("workflow", "start", "--type", "FirmwareRollout", "--task-queue", s.taskQueue,
		"--workflow-id", "stock-cli", "--input-file", spec)
	waitFor(t, 30*time.Second, "the progress query to answer", func() bool {
		out, err := execOutput(cli, "workflow", "query", "--workflow-id", "stock-cli", "--name", "progress", "--address", s.server.hostPort)
		return err == nil && strings.Contains(out, `"rolloutId":"stock-cli"`)
	})

	out, code := s.starter("watch", "stock-cli")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "30 updated")
	for _, d := range devices.stats(t).Devices {
		assert.EqualValues(t, 1, d.Installs, d.ID)
	}

	waitFor(t, 30*time.Second, "the rollout and its device updates in visibility", func() bool {
		rollouts := temporal("workflow", "count", "--query", "RolloutID = 'stock-cli' AND WorkflowType = 'FirmwareRollout' AND RolloutStatus = 'completed' AND FirmwareVersion = '1.1.0'")
		updates := temporal("workflow", "count", "--query", "RolloutID = 'stock-cli' AND WorkflowType = 'DeviceUpdate'")
		one := temporal("workflow", "count", "--query", "DeviceID = 'dev-00007' AND RolloutID = 'stock-cli'")
		return strings.Contains(rollouts, "Total: 1") && strings.Contains(updates, "Total: 30") && strings.Contains(one, "Total: 1")
	})
}

// A second start with the same rollout ID is refused, nothing starts.
func TestE2EDuplicateRolloutID(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "5", "--version", "1.0.0", "--reboot", "100ms")
	s.startWorker()
	image, _ := firmwareImage(t, 4<<10)
	args := []string{"start", "--id", "twice", "--inventory", devices.inventory(), "--firmware", image, "--version", "1.1.0"}

	out, code := s.starter(append(args, "--wait")...)
	require.Equal(t, 0, code, out)
	out, code = s.starter(args...)
	assert.Equal(t, 2, code, out)
	assert.Equal(t, "starter: rollout twice already exists; see it with: starter status twice\n", out)
	for _, d := range devices.stats(t).Devices {
		assert.EqualValues(t, 1, d.Uploads, d.ID)
	}
}

// pause stops new devices, resume carries on, cancel ends it as cancelled
// with the devices never started counted; each is acknowledged.
func TestE2EPauseResumeCancel(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "60", "--version", "1.0.0", "--reboot", "1s")
	s.startWorker()
	image, _ := firmwareImage(t, 4<<10)

	out, code := s.starter("start", "--id", "controls", "--inventory", devices.inventory(),
		"--firmware", image, "--version", "1.1.0", "--max-concurrent", "4")
	require.Equal(t, 0, code, out)

	out, code = s.starter("pause", "controls")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "pause controls: acknowledged, status paused")
	out, code = s.starter("pause", "controls")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "already paused")

	waitFor(t, 30*time.Second, "running devices to finish while paused", func() bool {
		r, ok := s.progress("controls")
		return ok && r.Running == 0
	})
	paused, _ := s.progress("controls")
	time.Sleep(1500 * time.Millisecond)
	still, _ := s.progress("controls")
	assert.Equal(t, paused.Started, still.Started, "no device starts while paused")
	assert.Less(t, paused.Started, 60)

	out, code = s.starter("resume", "controls")
	require.Equal(t, 0, code, out)
	waitFor(t, 30*time.Second, "progress after resume", func() bool {
		r, ok := s.progress("controls")
		return ok && r.Started > still.Started
	})

	out, code = s.starter("cancel", "controls")
	require.Equal(t, 0, code, out)
	out, code = s.starter("watch", "controls")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "rollout controls cancelled")

	r := s.result("controls", time.Minute)
	assert.Equal(t, workflows.StatusCancelled, r.Status)
	assert.Equal(t, 60, r.Counts.Done(), "every device has exactly one outcome")
	assert.Positive(t, r.Counts.Cancelled)
	installs := int64(0)
	for _, d := range devices.stats(t).Devices {
		assert.LessOrEqual(t, d.Installs, int64(1), d.ID)
		installs += d.Installs
	}
	assert.EqualValues(t, r.Counts.Succeeded, installs)
	assert.Equal(t, fmt.Sprint(60-r.Counts.Cancelled), fmt.Sprint(r.Started))
}
