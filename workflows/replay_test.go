package workflows

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Histories recorded from real runs (make histories) must replay against
// the current workflow code: a change that would break rollouts already
// running fails here. See the README on workflow.GetVersion. The e2e suite
// points REPLAY_HISTORIES at histories it has just recorded.
func TestReplayRecordedHistories(t *testing.T) {
	dir := os.Getenv("REPLAY_HISTORIES")
	if dir == "" {
		dir = "../testdata/histories"
	}
	// The index maps each history file to its workflow ID, which the
	// rollout checks against its spec.
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err, "no recorded histories: run make histories")
	var index map[string]string
	require.NoError(t, json.Unmarshal(b, &index))
	require.NotEmpty(t, index)

	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for file, workflowID := range index {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, file))
			require.NoError(t, err)
			defer func() { _ = f.Close() }()
			history, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			replayer := worker.NewWorkflowReplayer()
			Register(replayer)
			require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(logger, history, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: workflowID},
			}))
		})
	}
}
