package telemetry

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
)

// jsonLines parses every line the logger wrote; a line that is not one
// JSON object fails the test.
func jsonLines(t *testing.T, out *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, raw := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var line map[string]any
		require.NoError(t, json.Unmarshal(raw, &line), "%s", raw)
		lines = append(lines, line)
	}
	return lines
}

// keyCount counts how often key appears in one JSON line: a field written
// twice would still parse as one.
func keyCount(raw []byte, key string) int {
	return bytes.Count(raw, []byte(`"`+key+`":`))
}

// The SDK's loggers: fields bound with With (workflow.GetLogger and
// activity.GetLogger) and fields of one line (the SDK's own lines, such as
// "Activity error."), through the SDK's slog adapter like in the worker.
func TestDeviceFieldsFromWorkflowIDs(t *testing.T) {
	cases := []struct {
		name         string
		log          func(sdklog.Logger)
		rollout, dev string
		noIDs        bool
	}{
		{
			name: "activity logger of a device update",
			log: func(l sdklog.Logger) {
				sdklog.With(l, "ActivityType", "PushFirmware", "WorkflowID", "fw-2.4.0/pos-nyc-001").Info("device accepted the image")
			},
			rollout: "fw-2.4.0", dev: "pos-nyc-001",
		},
		{
			name: "activity line naming its device too",
			log: func(l sdklog.Logger) {
				sdklog.With(l, "WorkflowID", "fw-2.4.0/pos-nyc-001").Info("device accepted the image", "DeviceID", "pos-nyc-001")
			},
			rollout: "fw-2.4.0", dev: "pos-nyc-001",
		},
		{
			name: "SDK's own line about a failed attempt",
			log: func(l sdklog.Logger) {
				l.Error("Activity error.", "WorkflowID", "fw-2.4.0/pos-nyc-001", "ActivityType", "PushFirmware", "Error", "503")
			},
			rollout: "fw-2.4.0", dev: "pos-nyc-001",
		},
		{
			name:    "rollout workflow",
			log:     func(l sdklog.Logger) { sdklog.With(l, "WorkflowID", "fw-2.4.0").Info("phase started") },
			rollout: "fw-2.4.0",
		},
		{
			name: "rollout workflow about its child",
			log: func(l sdklog.Logger) {
				sdklog.With(l, "WorkflowID", "fw-2.4.0").Debug("ExecuteChildWorkflow", "ChildWorkflowID", "fw-2.4.0/pos-nyc-001")
			},
			rollout: "fw-2.4.0", dev: "pos-nyc-001",
		},
		{
			name: "device presence",
			log:  func(l sdklog.Logger) { sdklog.With(l, "WorkflowID", "presence/pos-nyc-001").Info("check-in") },
			dev:  "pos-nyc-001",
		},
		{
			name:  "worker line",
			log:   func(l sdklog.Logger) { l.Info("Started Worker", "TaskQueue", "firmware-rollout") },
			noIDs: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			logger, err := NewLogger(&out, "json", "debug")
			require.NoError(t, err)
			c.log(sdklog.NewStructuredLogger(logger))

			lines := jsonLines(t, &out)
			require.Len(t, lines, 1)
			if c.noIDs {
				assert.NotContains(t, lines[0], RolloutIDKey)
				assert.NotContains(t, lines[0], DeviceIDKey)
				return
			}
			if c.rollout != "" {
				assert.Equal(t, c.rollout, lines[0][RolloutIDKey], out.String())
			} else {
				assert.NotContains(t, lines[0], RolloutIDKey)
			}
			if c.dev != "" {
				assert.Equal(t, c.dev, lines[0][DeviceIDKey], out.String())
			}
			assert.LessOrEqual(t, keyCount(out.Bytes(), RolloutIDKey), 1, out.String())
			assert.LessOrEqual(t, keyCount(out.Bytes(), DeviceIDKey), 1, out.String())
		})
	}
}

// A group keeps what is logged into it; the IDs stay where they were.
func TestDeviceFieldsStayOutOfGroups(t *testing.T) {
	var out bytes.Buffer
	logger, err := NewLogger(&out, "json", "info")
	require.NoError(t, err)
	logger.With("WorkflowID", "fw-2.4.0/pos-1").WithGroup("http").Info("answer", "WorkflowID", "other/dev")

	line := jsonLines(t, &out)[0]
	assert.Equal(t, "fw-2.4.0", line[RolloutIDKey])
	assert.Equal(t, "pos-1", line[DeviceIDKey])
	assert.Equal(t, map[string]any{"WorkflowID": "other/dev"}, line["http"])
}

func TestLoggerFlags(t *testing.T) {
	var out bytes.Buffer
	logger, err := NewLogger(&out, "text", "warn")
	require.NoError(t, err)
	logger.Info("hidden")
	logger.Warn("shown", "WorkflowID", "r1/d1")
	assert.Equal(t, 1, bytes.Count(out.Bytes(), []byte("\n")), out.String())
	assert.Contains(t, out.String(), "msg=shown WorkflowID=r1/d1 RolloutID=r1 DeviceID=d1")

	_, err = NewLogger(&out, "xml", "info")
	assert.EqualError(t, err, `--log-format: "xml" is not text or json`)
	_, err = NewLogger(&out, "json", "loud")
	assert.EqualError(t, err, `--log-level: "loud" is not one of debug, info, warn, error`)
}
