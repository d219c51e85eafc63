package workflows

import (
	"encoding/json"
	"io/fs"
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
// running fails here. See the README on workflow.GetVersion. Every set of
// recordings (an index.json and its files) under the folder is replayed,
// so older sets kept in subfolders keep guarding older code paths. The
// e2e suite points REPLAY_HISTORIES at histories it has just recorded.
func TestReplayRecordedHistories(t *testing.T) {
	root := os.Getenv("REPLAY_HISTORIES")
	if root == "" {
		root = "../testdata/histories"
	}
	var indexes []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "index.json" {
			indexes = append(indexes, path)
		}
		return err
	}))
	require.NotEmpty(t, indexes, "no recorded histories under %s: run make histories", root)
	for _, index := range indexes {
		replayIndex(t, index)
	}
}

// replayIndex replays the histories an index maps to their workflow IDs
// (the rollout checks its ID against its spec).
func replayIndex(t *testing.T, indexPath string) {
	b, err := os.ReadFile(indexPath)
	require.NoError(t, err)
	var index map[string]string
	require.NoError(t, json.Unmarshal(b, &index))
	require.NotEmpty(t, index, indexPath)

	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	dir := filepath.Dir(indexPath)
	for file, workflowID := range index {
		t.Run(filepath.Join(filepath.Base(dir), file), func(t *testing.T) {
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
