package workflows

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// Helpers for the policy tests: a trace of what a rollout did on the
// workflow clock (device starts and ends, RolloutStatus upserts).

type deviceEvent struct {
	id  string
	at  time.Time
	err error // ends only
}

type statusEvent struct {
	status Status
	at     time.Time
}

// rolloutTrace records, on the test environment's clock, when each
// DeviceUpdate child started and ended and every RolloutStatus the rollout
// wrote to its search attributes.
type rolloutTrace struct {
	mu       sync.Mutex
	env      *testsuite.TestWorkflowEnvironment
	rollout  string
	starts   []deviceEvent
	ends     []deviceEvent
	statuses []statusEvent
}

func traceRollout(env *testsuite.TestWorkflowEnvironment, rolloutID string) *rolloutTrace {
	tr := &rolloutTrace{env: env, rollout: rolloutID}
	device := func(info *workflow.Info) string {
		return strings.TrimPrefix(info.WorkflowExecution.ID, rolloutID+"/")
	}
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.starts = append(tr.starts, deviceEvent{id: device(info), at: env.Now().UTC()})
	})
	env.SetOnChildWorkflowCompletedListener(func(info *workflow.Info, _ converter.EncodedValue, err error) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.ends = append(tr.ends, deviceEvent{id: device(info), at: env.Now().UTC(), err: err})
	})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		s, ok := sa.GetKeyword(RolloutStatusAttr)
		if !ok {
			return
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.statuses = append(tr.statuses, statusEvent{status: Status(s), at: env.Now().UTC()})
	}).Return()
	return tr
}

// startedIDs lists the devices in the order their children started.
func (tr *rolloutTrace) startedIDs() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ids := make([]string, len(tr.starts))
	for i, s := range tr.starts {
		ids[i] = s.id
	}
	return ids
}

func (tr *rolloutTrace) startOf(id string) time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.starts {
		if s.id == id {
			return s.at
		}
	}
	return time.Time{}
}

func (tr *rolloutTrace) endOf(id string) time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.ends {
		if s.id == id {
			return s.at
		}
	}
	return time.Time{}
}

// startsIn counts the devices started in [from, to).
func (tr *rolloutTrace) startsIn(from, to time.Time) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, s := range tr.starts {
		if !s.at.Before(from) && s.at.Before(to) {
			n++
		}
	}
	return n
}

// statusSequence is the RolloutStatus values written, in order.
func (tr *rolloutTrace) statusSequence() []Status {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seq := make([]Status, len(tr.statuses))
	for i, s := range tr.statuses {
		seq[i] = s.status
	}
	return seq
}

// statusAt is the RolloutStatus in force at t (the last written at or
// before t).
func (tr *rolloutTrace) statusAt(t time.Time) Status {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var s Status
	for _, e := range tr.statuses {
		if e.at.After(t) {
			break
		}
		s = e.status
	}
	return s
}

// firstStatus is when the status was first written (zero if never).
func (tr *rolloutTrace) firstStatus(s Status) time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, e := range tr.statuses {
		if e.status == s {
			return e.at
		}
	}
	return time.Time{}
}

// requireStatusSubsequence asserts that the statuses were written in this
// order (others may come in between).
func (tr *rolloutTrace) requireStatusSubsequence(t *testing.T, want ...Status) {
	t.Helper()
	seq := tr.statusSequence()
	i := 0
	for _, s := range seq {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	require.Equal(t, len(want), i, "RolloutStatus %v does not contain %v in order", seq, want)
}

// startedSet is the devices started in [from, to), sorted.
func (tr *rolloutTrace) startedSet(from, to time.Time) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var ids []string
	for _, s := range tr.starts {
		if !s.at.Before(from) && s.at.Before(to) {
			ids = append(ids, s.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids []string) []string {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

// inOrderKeyOrder sorts device IDs as the rollout orders them.
func inOrderKeyOrder(rolloutID string, ids []string) []string {
	sorted := slices.Clone(ids)
	sort.Slice(sorted, func(i, j int) bool { return OrderKey(rolloutID, sorted[i]) < OrderKey(rolloutID, sorted[j]) })
	return sorted
}

// atTime registers fn at start+d on the workflow clock (delayed
// callbacks count from the environment's start time).
func atTime(env *testsuite.TestWorkflowEnvironment, start, when time.Time, fn func()) {
	env.RegisterDelayedCallback(fn, when.Sub(start))
}

// pushTaking makes a push last the sum of the first n retry intervals of
// simulated time (n transient failures, then success): with the default
// policy (1s, doubling) n=1 is 1s, n=2 3s, n=3 7s.
func pushTaking(n int) pushFn { return failFirst(n, unavailable()) }

// failingAfter fails a device permanently after n transient failures, so
// that it costs n+1 attempts but one outcome.
func failingAfter(n int) pushFn {
	return func(_ context.Context, attempt int) (PushResult, error) {
		if attempt <= n {
			return PushResult{}, unavailable()
		}
		return PushResult{}, errDeviceRefused("push: device refused the upload: 403 Forbidden")
	}
}
