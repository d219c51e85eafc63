//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// pendingPush is what the server holds of a device's PushFirmware while
// it waits for a worker: the attempt it will run next, the failure of the
// one before and that one's last heartbeat.
func (s *stack) pendingPush(workflowID string) (*workflowpb.PendingActivityInfo, pushHeartbeat) {
	s.t.Helper()
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(s.t, err)
	for _, a := range desc.GetPendingActivities() {
		if a.GetActivityType().GetName() == workflows.PushFirmwareActivity {
			var beat pushHeartbeat
			if payloads := a.GetHeartbeatDetails().GetPayloads(); len(payloads) > 0 {
				require.NoError(s.t, json.Unmarshal(payloads[0].GetData(), &beat))
			}
			return a, beat
		}
	}
	s.t.Fatalf("%s has no pending PushFirmware", workflowID)
	return nil, pushHeartbeat{}
}

// pushHeartbeat mirrors PushFirmware's heartbeat (JSON, the contract
// between attempts).
type pushHeartbeat struct {
	Uploading       bool  `json:"uploading"`
	ConfirmedOffset int64 `json:"confirmedOffset"`
	BytesSent       int64 `json:"bytesSent"`
}

// stopGracefully sends SIGTERM and waits, up to within, for the process
// to exit; it returns the exit code.
func (p *proc) stopGracefully(t *testing.T, within time.Duration) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	start := time.Now()
	select {
	case <-p.done:
		t.Logf("%s exited %.1fs after SIGTERM", p.name, time.Since(start).Seconds())
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, within)
		return -1
	}
}

// SIGTERM during slow uploads: the worker exits 0 within its grace (plus
// a loose margin for this shared machine); the pushes it cut report a
// WorkerShutdown failure with their progress, so the server schedules
// their next attempt at once instead of after a heartbeat timeout; and a
// new worker resumes each upload where the device stands: one install per
// device, and the resumed uploads send only what the devices lack.
func TestE2EGracefulShutdownResumesPushes(t *testing.T) {
	const (
		n     = 6
		size  = 16 << 20
		grace = 3 * time.Second
	)
	s := newStack(t, sharedServer)
	// 1 MiB/s: each upload takes 16s, far longer than the grace.
	devices := startFleet(t, "--devices", "6", "--version", "2.0.0", "--reboot", "500ms", "--bandwidth", "1048576")
	image, _ := firmwareImage(t, size)
	spec := writeSpec(t, workflows.Spec{
		ID:            "shutdown-6",
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "3.0.0", URL: image},
		MaxConcurrent: n,
		// The default heartbeat timeout (30s) is left alone: a cut push
		// that did not report would wait for it.
		Device: workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "2s", MaximumAttempts: 30}},
	})
	first := s.startWorkerWith("--shutdown-grace", grace.String())
	out, code := s.starter("start", "--spec", spec)
	require.Equal(t, 0, code, out)
	waitFor(t, 60*time.Second, "every device receiving its upload", func() bool {
		for _, d := range devices.stats(t).Devices {
			if d.Bytes == 0 {
				return false
			}
		}
		return true
	})

	exit := first.stopGracefully(t, grace+20*time.Second)
	assert.Equal(t, 0, exit, "a worker stopped by SIGTERM exits 0")
	assert.Contains(t, first.output(), "running pushes get the shutdown grace to finish")
	assert.Contains(t, first.output(), "worker stopped")
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("shutdown-6/dev-%05d", i)
		pending, beat := s.pendingPush(id)
		assert.Equal(t, enumspb.PENDING_ACTIVITY_STATE_SCHEDULED, pending.GetState(), "%s: the next attempt waits for a worker", id)
		assert.EqualValues(t, 2, pending.GetAttempt(), id)
		failure := pending.GetLastFailure()
		assert.Equal(t, "WorkerShutdown", failure.GetApplicationFailureInfo().GetType(), "%s: last failure %v", id, failure)
		assert.False(t, failure.GetApplicationFailureInfo().GetNonRetryable(), id)
		assert.True(t, beat.Uploading, id)
		assert.Greater(t, beat.BytesSent, int64(0), "%s: the final heartbeat has the bytes sent", id)
		assert.Less(t, beat.BytesSent, int64(size), id)
		assert.Contains(t, failure.GetMessage(), fmt.Sprintf("push: cut after %d bytes", beat.BytesSent), id)
	}

	// The devices read what reached them before the cut, then keep it.
	waitFor(t, 60*time.Second, "the devices to take in the cut uploads", func() bool {
		for _, d := range devices.stats(t).Devices {
			if d.Installs > 0 {
				t.Fatalf("%s installed an upload cut mid-stream", d.ID)
			}
		}
		return !anyDeviceReceiving(t, devices)
	})
	cut := devices.stats(t)
	s.startWorker()
	r := s.result("shutdown-6", 3*time.Minute)
	require.Equal(t, workflows.StatusCompleted, r.Status, r.Reason)
	assert.Equal(t, workflows.Counts{Succeeded: n}, r.Counts)

	final := devices.stats(t)
	require.Len(t, final.Devices, n)
	for i, d := range final.Devices {
		assert.Equal(t, "3.0.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, "%s installed once", d.ID)
		resumed := d.Bytes - cut.Devices[i].Bytes
		assert.Less(t, resumed, int64(size), "%s: the resumed upload sent only the rest (%d of %d bytes)", d.ID, resumed, size)
		assert.Less(t, d.Bytes, int64(2*size), d.ID)
		assert.EqualValues(t, size, d.Bytes, "%s: no byte sent twice", d.ID)
	}
}

// anyDeviceReceiving asks each device's /version whether an upload is
// still arriving.
func anyDeviceReceiving(t *testing.T, devices *fleetSim) bool {
	t.Helper()
	for _, d := range devices.stats(t).Devices {
		resp, err := http.Get(devices.url + "/devices/" + d.ID + "/version")
		require.NoError(t, err)
		var v struct{ State string }
		err = json.NewDecoder(resp.Body).Decode(&v)
		_ = resp.Body.Close()
		require.NoError(t, err)
		if v.State == "receiving" {
			return true
		}
	}
	return false
}
