package workflows

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/uber-go/tally/v4"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// Each way a device's update ends is counted once, under its outcome, and
// a failure once more under its error type.
func TestDeviceOutcomesCounted(t *testing.T) {
	cases := []struct {
		name     string
		push     pushFn
		cancel   bool
		outcome  string
		failures map[string]int64
	}{
		{name: "updated after retries", push: failFirst(2, unavailable()), outcome: "updated"},
		{name: "already current", push: func(context.Context, int) (PushResult, error) {
			return PushResult{AlreadyInstalled: true}, nil
		}, outcome: "already_current"},
		{name: "refused", push: pushAlways(errDeviceRefused("push: device answered 403 Forbidden")),
			outcome: "failed", failures: map[string]int64{ErrDeviceRefused: 1}},
		{name: "unavailable on every attempt", push: pushAlways(unavailable()),
			outcome: "failed", failures: map[string]int64{"DeviceUnavailable": 1}},
		{name: "cancelled", push: slowPush, cancel: true, outcome: "cancelled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFleet("pos-1")
			f.pushes["pos-1"] = c.push
			scope := tally.NewTestScope("", nil)
			var suite testsuite.WorkflowTestSuite
			suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			suite.SetMetricsHandler(sdktally.NewMetricsHandler(scope))
			env := suite.NewTestWorkflowEnvironment()
			env.SetTestTimeout(30 * time.Second)
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "fw-dev/pos-1", TaskQueue: TaskQueue, WorkflowRunTimeout: 24 * time.Hour})
			Register(env)
			f.register(env)
			if c.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 500*time.Millisecond)
			}
			env.ExecuteWorkflow(DeviceUpdate, deviceRequest(DevicePolicy{Retry: RetrySpec{MaximumAttempts: 3}}))

			assert.Equal(t, map[string]int64{c.outcome: 1}, countersBy(scope, devicesMetric, "outcome"))
			if c.failures == nil {
				c.failures = map[string]int64{}
			}
			assert.Equal(t, c.failures, countersBy(scope, deviceFailuresMetric, "error_type"))
		})
	}
}

// countersBy sums the counter name by the value of one label.
func countersBy(scope tally.TestScope, name, label string) map[string]int64 {
	sums := map[string]int64{}
	for _, c := range scope.Snapshot().Counters() {
		if c.Name() == name {
			sums[c.Tags()[label]] += c.Value()
		}
	}
	return sums
}
