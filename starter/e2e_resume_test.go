//go:build e2e

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A 200 MB image through a line that resets every connection after 50 MB
// arrives whole: each retry resumes where the device's partial ends, so
// the bytes sent stay under 1.3 times the image.
func TestE2EResumeThroughResets(t *testing.T) {
	const size, resetEvery = 200 << 20, 50 << 20
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "1", "--version", "1.0.0", "--reboot", "200ms")
	proxy := startChaosProxy(t, strings.TrimPrefix(devices.url, "http://"), chaos{resetAfter: resetEvery})
	s.startWorker()
	image, _ := firmwareImage(t, size)
	spec := writeSpec(t, workflows.Spec{
		ID:        "resume-200mb",
		Inventory: writeInventoryVia(t, devices.inventoryDevices(t), map[string]string{"dev-00001": proxy.addr()}),
		Firmware:  workflows.Firmware{Version: "2.0.0", URL: image},
		Device: workflows.DevicePolicy{
			HeartbeatTimeout: "10s",
			Retry:            workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "1s", MaximumAttempts: 10},
		},
	})

	out, code := s.starter("start", "--spec", spec, "--wait")
	require.Equal(t, 0, code, out)

	st := devices.stats(t).Devices[0]
	assert.Equal(t, "2.0.0", st.Version)
	assert.EqualValues(t, 1, st.Installs)
	assert.GreaterOrEqual(t, st.Uploads, int64(size/resetEvery), "the line broke the upload up")
	sent := proxy.sent.Load()
	t.Logf("%d uploads, %d bytes through the proxy for a %d-byte image (%.2fx), %d received by the device",
		st.Uploads, sent, size, float64(sent)/size, st.Bytes)
	assert.Less(t, float64(sent), 1.3*size, "resumed, not restarted")
}

// kill -9 the worker while every device is in a resumed upload (each cut
// its first upload mid-stream): the next worker resumes again, and every
// device ends on the new version with one install.
func TestE2EWorkerKilledMidResume(t *testing.T) {
	const n, size = 10, 4 << 20
	s := newStack(t, sharedServer)
	// 1 MB/s per upload: the resumed half of each image takes about 2 s.
	devices := startFleet(t, "--devices", "10", "--version", "1.0.0", "--reboot", "500ms",
		"--drop", "1", "--bandwidth", "1048576")
	worker := s.startWorker()
	image, _ := firmwareImage(t, size)
	spec := writeSpec(t, workflows.Spec{
		ID:        "resume-crash",
		Inventory: devices.inventory(),
		Firmware:  workflows.Firmware{Version: "2.0.0", URL: image},
		Device: workflows.DevicePolicy{
			HeartbeatTimeout: "3s",
			Retry:            workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "1s", MaximumAttempts: 10},
		},
	})
	out, code := s.starter("start", "--spec", spec)
	require.Equal(t, 0, code, out)

	waitFor(t, 2*time.Minute, "a resumed upload under way on a device", func() bool {
		for _, d := range devices.stats(t).Devices {
			if d.Uploads >= 2 && d.Installs == 0 {
				return true
			}
		}
		return false
	})
	worker.kill()
	s.startWorker()

	r := s.result("resume-crash", 3*time.Minute)
	assert.Equal(t, workflows.StatusCompleted, r.Status, r.Reason)
	assert.Equal(t, n, r.Counts.Succeeded)
	for _, d := range devices.stats(t).Devices {
		assert.Equal(t, "2.0.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, "%s installed %d times", d.ID, d.Installs)
		assert.GreaterOrEqual(t, d.Uploads, int64(2), "%s: cut once, then resumed", d.ID)
		assert.Less(t, d.Bytes, int64(2*size), "%s: resumed uploads, not whole ones: %d bytes", d.ID, d.Bytes)
	}
}
