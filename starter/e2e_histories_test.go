//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A rollout in two phases (a soaked canary, then a phase that needs
// approval) inside a maintenance window, that continues as new, is paused
// and resumed, and meets a device that answers 503 twice, one that refuses
// with 403 and one that comes back on its old version. Its real histories are replayed against
// the current workflow code; `make histories` (UPDATE_HISTORIES=1) also
// stores them in testdata/histories for workflows/replay_test.go.
func TestE2EHistoriesReplay(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "80", "--version", "1.0.0", "--reboot", "1s",
		"--fail-5xx", "0.1", "--fail-4xx", "0.05", "--wrong-version", "0.05", "--seed", "5")
	s.startWorker()
	image, _ := firmwareImage(t, 8<<10)
	spec := writeSpec(t, workflows.Spec{
		ID:               "history",
		Inventory:        devices.inventory(),
		Firmware:         workflows.Firmware{Version: "1.1.0", URL: image},
		MaxConcurrent:    6,
		MaxHistoryEvents: 300,
		Device:           workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "100ms"}},
		Phases: []workflows.Phase{
			{Name: "canary", Percent: 10, Soak: "1s", MinSuccessPercent: 50},
			{Name: "rest", Percent: 100, RequireApproval: true},
		},
		Window: &workflows.Window{Start: "02:00", Duration: "2h", Timezone: zoneWhereHourIs(2)},
	})
	out, code := s.starter("start", "--spec", spec)
	require.Equal(t, 0, code, out)
	waitFor(t, 30*time.Second, "the second phase to await approval", func() bool {
		r, ok := s.progress("history")
		return ok && r.Status == workflows.StatusAwaitingApproval
	})
	out, code = s.starter("approve", "history")
	require.Equal(t, 0, code, out)
	waitFor(t, 30*time.Second, "a few devices of the second phase done", func() bool {
		r, ok := s.progress("history")
		return ok && r.Counts.Done() >= 15
	})
	for _, control := range []string{"pause", "resume"} {
		out, code = s.starter(control, "history")
		require.Equal(t, 0, code, out)
	}
	r := s.result("history", 2*time.Minute)
	require.Equal(t, workflows.StatusCompletedWithFailures, r.Status)
	require.Greater(t, r.Runs, 1, "the rollout continued as new")
	assert.Equal(t, 80, r.Counts.Done())

	dir := t.TempDir()
	if os.Getenv("UPDATE_HISTORIES") != "" {
		dir = "../testdata/histories"
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	runs := s.runIDs("history")
	require.GreaterOrEqual(t, len(runs), 2)
	index := map[string]string{}
	s.saveHistory(dir, index, "rollout-first-run.json", "history", runs[0])
	s.saveHistory(dir, index, "rollout-last-run.json", "history", runs[len(runs)-1])
	for _, d := range devices.stats(t).Devices {
		name := "device-" + string(d.Fault) + ".json"
		if d.Fault == "" {
			name = "device-updated.json"
		}
		if _, done := index[name]; !done {
			s.saveHistory(dir, index, name, "history/"+d.ID, "")
		}
	}
	require.Len(t, index, 6, "two rollout runs, an updated, a 5xx, a 4xx and a wrong-version device")
	b, err := json.MarshalIndent(index, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644))

	// Replay them with the unit test that replays testdata/histories.
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	replay := exec.Command("go", "test", "-count=1", "-run", "TestReplayRecordedHistories", "../workflows/")
	replay.Env = append(os.Environ(), "REPLAY_HISTORIES="+abs)
	replayed, err := replay.CombinedOutput()
	require.NoError(t, err, "replaying the recorded histories:\n%s", replayed)
}

// runIDs lists a workflow's runs, oldest first.
func (s *stack) runIDs(id string) []string {
	s.t.Helper()
	resp, err := s.client.ListWorkflow(s.t.Context(), listRequest(fmt.Sprintf("WorkflowId = '%s'", id), nil))
	require.NoError(s.t, err)
	execs := resp.GetExecutions()
	slices.SortFunc(execs, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime())
	})
	var ids []string
	for _, e := range execs {
		ids = append(ids, e.GetExecution().GetRunId())
	}
	return ids
}

// saveHistory writes a history as `temporal workflow show --output json`
// does, the format the replayer reads.
func (s *stack) saveHistory(dir string, index map[string]string, name, workflowID, runID string) {
	s.t.Helper()
	cli, err := temporalCLI()
	require.NoError(s.t, err)
	args := []string{"workflow", "show", "--workflow-id", workflowID, "--output", "json", "--address", s.server.hostPort}
	if runID != "" {
		args = append(args, "--run-id", runID)
	}
	cmd := exec.Command(cli, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(s.t, err, "temporal workflow show %s: %s", workflowID, stderr.String())
	require.NoError(s.t, os.WriteFile(filepath.Join(dir, name), out, 0o644))
	index[name] = workflowID
}
