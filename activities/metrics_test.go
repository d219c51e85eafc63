package activities_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uber-go/tally/v4"
	sdktally "go.temporal.io/sdk/contrib/tally"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// meter captures what the activities report through the SDK's metrics
// handler, as the worker's Prometheus scope would.
type meter struct{ scope tally.TestScope }

func newMeter() meter { return meter{tally.NewTestScope("", nil)} }

func (m meter) option() envOption { return withMetrics(sdktally.NewMetricsHandler(m.scope)) }

func (m meter) counter(name string) int64 {
	var sum int64
	for _, c := range m.scope.Snapshot().Counters() {
		if c.Name() == name {
			sum += c.Value()
		}
	}
	return sum
}

// timings counts the recorded durations of name by their result label.
func (m meter) timings(name string) map[string]int {
	counts := map[string]int{}
	for _, tm := range m.scope.Snapshot().Timers() {
		if tm.Name() == name {
			counts[tm.Tags()["result"]] += len(tm.Values())
		}
	}
	return counts
}

// A cut upload and its resumed retry: the bytes each attempt sent are
// counted, the retry and the resume too, and each attempt's duration is
// recorded under how it ended. A push to the updated device finds it
// current and sends nothing.
func TestPushMetrics(t *testing.T) {
	t.Parallel()
	im := newImage(t, 70, 1<<20+5)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 50 * time.Millisecond})
	req := pushRequest(deviceURL(srv, firstDevice), im.firmware(url))
	m := newMeter()

	first := newHarness(t, m.option())
	_, err := first.push(req)
	requireTransient(t, err, "push")
	half := deviceStats(t, f, firstDevice).Bytes
	require.Equal(t, im.size/2, half)
	// What left the worker before the cut, which may be more than the
	// device read.
	sentBeforeCut := m.counter("firmware_rollout_push_bytes_total")
	assert.GreaterOrEqual(t, sentBeforeCut, half)
	assert.LessOrEqual(t, sentBeforeCut, im.size)

	retry := newHarness(t, m.option(), withAttempt(2), withDetails(lastBeat(t, first)))
	retry.mustPush(req)
	sent := sentBeforeCut + im.size - half
	assert.Equal(t, sent, m.counter("firmware_rollout_push_bytes_total"), "the retry sent the rest")
	assert.EqualValues(t, 1, m.counter("firmware_rollout_resumed_uploads_total"))
	assert.Equal(t, half, m.counter("firmware_rollout_resumed_bytes_total"))
	assert.EqualValues(t, 1, m.counter("firmware_rollout_push_retries_total"))
	eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")

	newHarness(t, m.option()).mustPush(req)
	assert.Equal(t, sent, m.counter("firmware_rollout_push_bytes_total"))
	assert.Equal(t, map[string]int{"retryable_error": 1, "accepted": 1, "already_installed": 1},
		m.timings("firmware_rollout_push_duration_seconds"))
}

// A refusal is a permanent error; the verify of an updated device is
// confirmed, that of a device on another version is not.
func TestRefusalAndVerifyMetrics(t *testing.T) {
	t.Parallel()
	im := newImage(t, 71, 64<<10)
	_, url := writeImage(t, im)
	refusing, refusingSrv := startFleet(t, fleet.Config{Fail4xx: 1})
	m := newMeter()
	_, err := newHarness(t, m.option()).push(pushRequest(deviceURL(refusingSrv, firstDevice), im.firmware(url)))
	requirePermanent(t, err, workflows.ErrDeviceRefused)
	assert.Zero(t, deviceStats(t, refusing, firstDevice).Installs)
	assert.Equal(t, map[string]int{"permanent_error": 1}, m.timings("firmware_rollout_push_duration_seconds"))

	_, srv := startFleet(t, fleet.Config{})
	h := newHarness(t, m.option())
	_, err = h.verify(workflows.VerifyRequest{Address: deviceURL(srv, firstDevice), Version: oldVersion, Within: time.Second})
	require.NoError(t, err)
	_, err = h.verify(workflows.VerifyRequest{Address: deviceURL(srv, firstDevice), Version: targetVersion, PreviousVersion: "0.9.0", Within: time.Second})
	requirePermanent(t, err, workflows.ErrWrongVersion)
	assert.Equal(t, map[string]int{"confirmed": 1, "permanent_error": 1}, m.timings("firmware_rollout_verify_duration_seconds"))
}
