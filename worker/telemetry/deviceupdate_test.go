package telemetry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// DeviceUpdate and its real activities, against a device that answers 503
// to its first two uploads: every line the SDK and the activities write
// about it names the rollout and the device, and the device's token
// appears on none.
func TestDeviceUpdateLinesNameRolloutAndDevice(t *testing.T) {
	const token = "tok-3f9a-secret"
	devices, err := fleet.New(fleet.Config{Devices: 1, Version: "1.0.0", Fail5xx: 1, Token: token, Reboot: 50 * time.Millisecond})
	require.NoError(t, err)
	srv := httptest.NewServer(devices.Handler())
	t.Cleanup(srv.Close)
	firmware := writeFirmware(t, 32<<10)

	var out bytes.Buffer
	logger, err := NewLogger(&out, "json", "debug")
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(logger))
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	// A run timeout, or the test environment drops the push's heartbeat timeout.
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{
		ID: workflows.DeviceUpdateID("fw-2.0.0", "dev-00001"), TaskQueue: workflows.TaskQueue, WorkflowRunTimeout: time.Hour,
	})
	workflows.Register(env)
	(&activities.Activities{Client: activities.NewHTTPClient(nil), DeviceToken: token}).Register(env)

	env.ExecuteWorkflow(workflows.DeviceUpdate, workflows.DeviceRequest{
		RolloutID: "fw-2.0.0",
		DeviceID:  "dev-00001",
		Address:   srv.URL + "/devices/dev-00001",
		Firmware:  firmware,
		Policy:    workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "10ms"}},
	})
	require.NoError(t, env.GetWorkflowError())
	var result workflows.DeviceResult
	require.NoError(t, env.GetWorkflowResult(&result))
	require.Equal(t, workflows.OutcomeUpdated, result.Outcome)
	require.EqualValues(t, 3, devices.Stats().Devices[0].Uploads, "two 503s, then the upload that took")

	// The test environment gives workflow code a logger without the
	// WorkflowID a worker binds, so the workflow's own lines are checked
	// end to end (starter/e2e_metrics_test.go); the activities' and the
	// SDK's lines carry it here as on a worker.
	seen := map[string]int{}
	for _, line := range jsonLines(t, &out) {
		if _, ok := line["WorkflowID"]; !ok {
			continue
		}
		assert.Equal(t, "fw-2.0.0", line[RolloutIDKey], "%v", line)
		assert.Equal(t, "dev-00001", line[DeviceIDKey], "%v", line)
		seen[line["msg"].(string)]++
	}
	assert.Equal(t, 2, seen["Activity error."], "the SDK's lines about the two 503s: %v", seen)
	assert.Equal(t, 2, seen["asked the device how much of the image it holds"], "the retries' lines: %v", seen)
	assert.Equal(t, 1, seen["device accepted the image"], "%v", seen)
	for _, raw := range bytes.Split(out.Bytes(), []byte("\n")) {
		assert.LessOrEqual(t, keyCount(raw, DeviceIDKey), 1, "%s", raw)
	}
	assert.NotContains(t, out.String(), token)
}

func writeFirmware(t *testing.T, size int) workflows.Firmware {
	t.Helper()
	image := bytes.Repeat([]byte("firmware"), size/8)
	path := filepath.Join(t.TempDir(), "firmware.bin")
	require.NoError(t, os.WriteFile(path, image, 0o644))
	sum := sha256.Sum256(image)
	return workflows.Firmware{Version: "2.0.0", URL: "file://" + path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(image))}
}
