//go:build e2e

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A rollout that crosses its abort threshold rolls back, as a phase of its
// own, every device it updated: each ends on the previous version, with
// its install and its rollback install, and no other device is touched.
func TestE2EAbortRollsBack(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "40", "--version", "1.0.0", "--reboot", "100ms", "--fail-4xx", "0.3", "--seed", "2")
	s.startWorker()
	newImage, _ := firmwareImage(t, 32<<10)
	oldImage, oldSum := firmwareImage(t, 16<<10)
	spec := writeSpec(t, workflows.Spec{
		ID:            "abort-rollback",
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "2.0.0", URL: newImage},
		MaxConcurrent: 4,
		Abort:         &workflows.Abort{MaxFailurePercent: 10, MinDevices: 10},
		Rollback: &workflows.Rollback{OnAbort: true,
			Firmware: workflows.Firmware{Version: "1.0.0", URL: "file://" + oldImage, SHA256: oldSum}},
	})

	out, code := s.starter("start", "--spec", spec, "--wait")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "rollout abort-rollback aborted")
	r := s.result("abort-rollback", time.Minute)
	require.Equal(t, workflows.StatusAborted, r.Status)
	require.Positive(t, r.Counts.Succeeded)
	rollback := r.Phases[len(r.Phases)-1]
	assert.Equal(t, "rollback", rollback.Name)
	assert.Equal(t, workflows.PhasePassed, rollback.State)
	assert.Equal(t, r.Counts.Succeeded, rollback.Counts.Succeeded)
	assert.Contains(t, r.Reason, "rolled back")

	rolledBack := 0
	for _, d := range devices.stats(t).Devices {
		assert.Equal(t, "1.0.0", d.Version, d.ID)
		switch {
		case d.Fault == fleet.FaultFail4xx:
			assert.Zero(t, d.Installs, d.ID)
		case d.Installs > 0:
			assert.EqualValues(t, 2, d.Installs, "%s: its update and its rollback", d.ID)
			rolledBack++
		}
	}
	assert.Equal(t, r.Counts.Succeeded, rolledBack)
}

// starter rollback brings the devices of an ended rollout back.
func TestE2EStarterRollback(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "12", "--version", "1.0.0", "--reboot", "100ms")
	s.startWorker()
	newImage, _ := firmwareImage(t, 32<<10)
	oldImage, _ := firmwareImage(t, 16<<10)
	out, code := s.starter("start", "--id", "to-undo", "--inventory", devices.inventory(),
		"--firmware", newImage, "--version", "2.0.0", "--wait")
	require.Equal(t, 0, code, out)

	out, code = s.starter("rollback", "to-undo")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "has no rollback.firmware in its spec: give --firmware and --version")

	out, code = s.starter("rollback", "to-undo", "--firmware", oldImage, "--version", "1.0.0", "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "rollout to-undo-rollback completed")
	assert.Contains(t, out, "12 devices, 12 updated")
	for _, d := range devices.stats(t).Devices {
		assert.Equal(t, "1.0.0", d.Version, d.ID)
		assert.EqualValues(t, 2, d.Installs, d.ID)
	}
	out, code = s.starter("rollback", "to-undo", "--firmware", oldImage, "--version", "1.0.0")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "was already rolled back by to-undo-rollback")
}
