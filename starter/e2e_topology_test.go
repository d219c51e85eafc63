//go:build e2e

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

var buildHealthcheck sync.Once

// healthy runs the image's healthcheck command against url, as compose's
// health checks do.
func healthy(t *testing.T, url string) bool {
	t.Helper()
	bin := filepath.Join(binDir, "healthcheck")
	buildHealthcheck.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "../worker/healthcheck").CombinedOutput()
		require.NoError(t, err, "building healthcheck: %s", out)
	})
	return exec.Command(bin, url).Run() == nil
}

// startComposeWorker starts a worker as docker-compose.yml does: the
// Temporal address from the environment, a health endpoint.
func (s *stack) startComposeWorker() (*proc, string) {
	health := "127.0.0.1:" + freePort()
	p := startProc(s.t, []string{"TEMPORAL_ADDRESS=" + s.server.hostPort}, "worker",
		"--task-queue", s.taskQueue, "--health-listen", health, "--shutdown-grace", "5s")
	return p, "http://" + health + "/healthz"
}

// pushIdentities are the workers that ran the last attempt of each of a
// rollout's pushes, from the DeviceUpdate histories.
func (s *stack) pushIdentities(rolloutID string, devices *fleetSim) map[string]int {
	s.t.Helper()
	identities := map[string]int{}
	for _, d := range devices.stats(s.t).Devices {
		iter := s.client.GetWorkflowHistory(context.Background(), rolloutID+"/"+d.ID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		pushes := map[int64]bool{}
		for iter.HasNext() {
			e, err := iter.Next()
			require.NoError(s.t, err)
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == workflows.PushFirmwareActivity {
				pushes[e.GetEventId()] = true
			}
			if a := e.GetActivityTaskStartedEventAttributes(); a != nil && pushes[a.GetScheduledEventId()] {
				identities[a.GetIdentity()]++
			}
		}
	}
	return identities
}

// The compose topology without Docker: devicemock and two workers on one
// task queue, both healthy by the image's healthcheck. Both take pushes;
// one is killed (kill -9) mid-rollout, and the other finishes it: every
// device on the new version, installed exactly once.
func TestE2ETopologyTwoWorkersOneKilled(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "60", "--version", "2.0.0", "--reboot", "1s", "--bandwidth", "1048576")
	require.True(t, healthy(t, devices.url+"/_fleet/stats"), "devicemock is healthy")
	doomed, doomedHealth := s.startComposeWorker()
	survivor, survivorHealth := s.startComposeWorker()
	waitFor(t, 30*time.Second, "both workers healthy", func() bool {
		return healthy(t, doomedHealth) && healthy(t, survivorHealth)
	})

	image, _ := firmwareImage(t, 512<<10)
	spec := writeSpec(t, workflows.Spec{
		ID:            "topology-60",
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "3.0.0", URL: image},
		MaxConcurrent: 12,
		Device: workflows.DevicePolicy{
			HeartbeatTimeout: "3s",
			Retry:            workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "2s", MaximumAttempts: 20},
		},
	})
	out, code := s.starter("start", "--spec", spec)
	require.Equal(t, 0, code, out)

	// Both workers push before one dies, a good part into the rollout:
	// their logs name the devices.
	accepted := func(p *proc) int { return strings.Count(p.output(), "device accepted the image") }
	waitFor(t, 90*time.Second, "both workers to have pushed images", func() bool {
		return accepted(doomed) > 0 && accepted(survivor) > 0 && accepted(doomed)+accepted(survivor) >= 15
	})
	t.Logf("before the kill: %d pushes on the doomed worker, %d on the survivor", accepted(doomed), accepted(survivor))
	require.Less(t, devices.stats(t).Totals.Installs, int64(60), "killed mid-rollout")
	doomed.kill()
	assert.False(t, healthy(t, doomedHealth), "a dead worker is not healthy")

	assertExactlyOnce(t, s, "topology-60", devices, 60)
	assert.True(t, healthy(t, survivorHealth), "the survivor stays healthy")

	// The histories agree: pushes ran on both workers (identity pid@host).
	identities := s.pushIdentities("topology-60", devices)
	t.Logf("pushes by worker identity: %v", identities)
	pushesBy := func(p *proc) (n int) {
		for identity, count := range identities {
			if strings.HasPrefix(identity, fmt.Sprintf("%d@", p.cmd.Process.Pid)) {
				n += count
			}
		}
		return n
	}
	assert.Positive(t, pushesBy(doomed), "the killed worker's pushes are in the histories")
	assert.Positive(t, pushesBy(survivor), "the survivor's pushes are in the histories")
	assert.Equal(t, 60, pushesBy(doomed)+pushesBy(survivor), "every push ran on one of the two")
}
