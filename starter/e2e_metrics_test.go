//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A rollout over devices that refuse uploads (403) or fail twice (503),
// with the worker's metrics and JSON logs on: the product's counters equal
// what the devices saw, the SDK's metrics are served, queries that replay
// the device histories count nothing again, every log line about a device
// names it and its rollout, and the device token is on none.
func TestE2EMetricsAndLogs(t *testing.T) {
	const (
		rolloutID = "metrics-60"
		imageSize = 64 << 10
		token     = "e2e-metrics-token-5d1c9b"
	)
	s := newStack(t, sharedServer)
	tokenFile := filepath.Join(t.TempDir(), "device-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	devices := startFleet(t, "--devices", "60", "--version", "2.3.1", "--reboot", "300ms",
		"--fail-4xx", "0.1", "--fail-5xx", "0.2", "--seed", "11", "--token", token)
	metricsURL := "http://127.0.0.1:" + freePort() + "/metrics"
	worker := s.startWorkerWith("--metrics-addr", strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics"),
		"--log-format", "json", "--device-token-file", tokenFile)
	image, _ := firmwareImage(t, imageSize)
	spec := writeSpec(t, workflows.Spec{
		ID:        rolloutID,
		Inventory: devices.inventory(),
		Firmware:  workflows.Firmware{Version: "2.4.0", URL: image},
		Device:    workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "200ms"}},
	})

	out, code := s.starter("start", "--spec", spec, "--wait")
	require.Equal(t, 1, code, out)

	st := devices.stats(t)
	updated, refused, flaky := 0, 0, 0
	for _, d := range st.Devices {
		switch d.Fault {
		case fleet.FaultFail4xx:
			refused++
			require.Zero(t, d.Installs, d.ID)
		case fleet.FaultFail5xx:
			flaky++
			require.EqualValues(t, 3, d.Uploads, "%s: two 503s, then the upload", d.ID)
		}
		if d.Installs == 1 {
			updated++
		}
	}
	require.Equal(t, 6, refused)
	require.Equal(t, 12, flaky)
	require.Equal(t, 54, updated)

	// The registry gets the counts once a second: wait for all 60 outcomes.
	var m scrape
	waitFor(t, time.Minute, "60 device outcomes in /metrics", func() bool {
		m = scrapeMetrics(t, metricsURL)
		return m.sum("firmware_rollout_devices_total", nil) == 60
	})
	assertOutcomes := func(m scrape) {
		t.Helper()
		assert.EqualValues(t, updated, m.sum("firmware_rollout_devices_total", labels{"outcome": "updated"}))
		assert.EqualValues(t, refused, m.sum("firmware_rollout_devices_total", labels{"outcome": "failed"}))
		assert.EqualValues(t, refused, m.sum("firmware_rollout_device_failures_total", labels{"error_type": workflows.ErrDeviceRefused}))
		assert.EqualValues(t, refused, m.sum("firmware_rollout_device_failures_total", nil))
	}
	assertOutcomes(m)
	pushed := m.sum("firmware_rollout_push_bytes_total", nil)
	assert.GreaterOrEqual(t, pushed, float64(updated*imageSize))
	assert.GreaterOrEqual(t, pushed, float64(st.Totals.Bytes), "the worker sent at least what the devices read")
	assert.EqualValues(t, 2*flaky, m.sum("firmware_rollout_push_retries_total", nil))
	push := "firmware_rollout_push_duration_seconds"
	assert.EqualValues(t, updated, m.histogramCount(push, labels{"result": "accepted"}))
	assert.EqualValues(t, 2*flaky, m.histogramCount(push, labels{"result": "retryable_error"}))
	assert.EqualValues(t, refused, m.histogramCount(push, labels{"result": "permanent_error"}))
	assert.EqualValues(t, updated, m.histogramCount("firmware_rollout_verify_duration_seconds", labels{"result": "confirmed"}))

	// The SDK's own metrics, on the same endpoint.
	assert.EqualValues(t, updated, m.sum("temporal_workflow_completed_total", labels{"workflow_type": "DeviceUpdate"}))
	assert.EqualValues(t, refused, m.sum("temporal_workflow_failed_total", labels{"workflow_type": "DeviceUpdate"}))
	assert.EqualValues(t, updated+2*flaky+refused, m.histogramCount("temporal_activity_execution_latency_seconds", labels{"activity_type": "PushFirmware"}))
	assert.Positive(t, m.sum("temporal_request_total", nil))
	assert.Contains(t, m, "temporal_worker_task_slots_available")

	// A query of a closed workflow replays its whole history on the worker:
	// the outcome is not counted or logged again.
	queries := 0
	for _, d := range st.Devices[:10] {
		_, err := s.client.QueryWorkflow(context.Background(), workflows.DeviceUpdateID(rolloutID, d.ID), "", "__stack_trace")
		require.NoError(t, err, d.ID)
		queries++
	}
	waitFor(t, time.Minute, "the worker's query answers in /metrics", func() bool {
		m = scrapeMetrics(t, metricsURL)
		return m.sum("temporal_request_total", labels{"operation": "RespondQueryTaskCompleted"}) >= float64(queries)
	})
	assertOutcomes(m)

	assertDeviceLines(t, worker.output(), rolloutID, token, updated, refused)
	assert.NotContains(t, worker.output(), "could not be registered", "every metric keeps one set of labels")
}

// assertDeviceLines checks every line of the worker's JSON log: each that
// is about a device of the rollout names the rollout and the device, each
// device's end is logged once, and the token appears nowhere.
func assertDeviceLines(t *testing.T, output, rolloutID, token string, updated, refused int) {
	t.Helper()
	assert.NotContains(t, output, token)
	ends := map[string]int{}
	kinds := map[string]int{}
	for _, raw := range scanLines(output) {
		var line map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &line), "not a JSON line: %s", raw)
		wid, _ := line["WorkflowID"].(string)
		device, isDevice := strings.CutPrefix(wid, rolloutID+"/")
		if !isDevice {
			continue
		}
		assert.Equal(t, rolloutID, line["RolloutID"], raw)
		assert.Equal(t, device, line["DeviceID"], raw)
		msg := line["msg"].(string)
		kinds[msg]++
		if msg == "device update ended" || msg == "device update failed" {
			ends[device]++
			if msg == "device update failed" {
				assert.Equal(t, workflows.ErrDeviceRefused, line["ErrorType"], raw)
			}
		}
	}
	assert.Len(t, ends, updated+refused, "every device's end is logged")
	for device, n := range ends {
		assert.Equal(t, 1, n, "%s: its end is logged once", device)
	}
	assert.Equal(t, updated, kinds["device update ended"])
	assert.Equal(t, refused, kinds["device update failed"])
	assert.Equal(t, updated, kinds["device accepted the image"], "PushFirmware's lines")
	assert.Positive(t, kinds["Activity error."], "the SDK's own lines about failed attempts")
}

// scrape is one read of /metrics, by metric family name.
type scrape map[string]*dto.MetricFamily

type labels map[string]string

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// matching is the series of name whose labels include want.
func (s scrape) matching(name string, want labels) []*dto.Metric {
	family, ok := s[name]
	if !ok {
		return nil
	}
	var series []*dto.Metric
	for _, m := range family.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range want {
			matches = matches && have[k] == v
		}
		if matches {
			series = append(series, m)
		}
	}
	return series
}

// sum adds up the counters (or gauges) of name whose labels include want.
func (s scrape) sum(name string, want labels) float64 {
	total := 0.0
	for _, m := range s.matching(name, want) {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// histogramCount adds up the observations of the histograms of name whose
// labels include want.
func (s scrape) histogramCount(name string, want labels) uint64 {
	var total uint64
	for _, m := range s.matching(name, want) {
		total += m.GetHistogram().GetSampleCount()
	}
	return total
}
