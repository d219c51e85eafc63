package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// Maintenance windows and startAt. Pushes here take 25 minutes of
// simulated time (one transient failure with a 25m retry interval), so a
// device started late in a window is still running when it closes.

func windowFixture(t *testing.T, id string, n, window int, start time.Time, w *Window) (*fleet, Spec, *testsuite.TestWorkflowEnvironment, *rolloutTrace) {
	t.Helper()
	f := newFleet(deviceIDs(n)...)
	f.defPush = slowPush
	spec := validSpec(id)
	spec.MaxConcurrent = window
	spec.Window = w
	spec.Device.Retry.InitialInterval = "25m"
	require.NoError(t, spec.Validate())
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(start)
	return f, spec, env, traceRollout(env, id)
}

// Started on a Friday afternoon with a weekday window of 02:00-03:00 New
// York time: nothing starts before Monday 02:00; each window starts 6
// devices (2 at :00, :25 and :50), the last two run past its end; the
// rest continue in the next window.
func TestRolloutWindowStartsDevicesOnlyInside(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	start := time.Date(2026, 6, 12, 12, 0, 0, 0, ny) // Friday
	w := &Window{Start: "02:00", Duration: "1h", Timezone: "America/New_York",
		Days: []string{"mon", "tue", "wed", "thu", "fri"}}
	_, spec, env, tr := windowFixture(t, "fw-window", 20, 2, start, w)
	day := func(d, h, m int) time.Time { return time.Date(2026, 6, d, h, m, 0, 0, ny).UTC() }

	var weekend, inside, closing, closed Report
	atTime(env, start, day(13, 12, 0), func() { weekend = queryProgress(t, env) })
	atTime(env, start, day(15, 2, 10), func() { inside = queryProgress(t, env) })
	atTime(env, start, day(15, 3, 5), func() { closing = queryProgress(t, env) })
	atTime(env, start, day(15, 4, 0), func() { closed = queryProgress(t, env) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	checkInvariants(t, weekend, spec)
	assert.Equal(t, StatusWaitingWindow, weekend.Status)
	assert.Equal(t, 20, weekend.Selected)
	assert.Equal(t, 0, weekend.Started)
	assert.Equal(t, day(15, 2, 0), weekend.NextWindow.UTC(), "the report shows the next window")

	assert.Equal(t, StatusRunning, inside.Status)
	assert.True(t, inside.NextWindow.IsZero())
	assert.Equal(t, 2, inside.Started)
	assert.Equal(t, 2, inside.Running)

	// at the window's end running devices finish, no new one starts
	checkInvariants(t, closing, spec)
	assert.Equal(t, StatusWaitingWindow, closing.Status)
	assert.Equal(t, 6, closing.Started)
	assert.Equal(t, 2, closing.Running)
	assert.Equal(t, day(16, 2, 0), closing.NextWindow.UTC())
	assert.Equal(t, 0, closed.Running)
	assert.Equal(t, Counts{Succeeded: 6}, closed.Counts)

	windows := []time.Time{day(15, 2, 0), day(16, 2, 0), day(17, 2, 0), day(18, 2, 0)}
	assert.Equal(t, 0, tr.startsIn(start, windows[0]), "nothing starts before the first window")
	for i, open := range windows {
		want := 6
		if i == 3 {
			want = 2
		}
		assert.Equal(t, want, tr.startsIn(open, open.Add(time.Hour)), "window %d", i)
		for _, m := range []int{0, 25, 50} {
			n := tr.startsIn(open.Add(time.Duration(m)*time.Minute), open.Add(time.Duration(m)*time.Minute+time.Second))
			assert.Equal(t, min(2, max(0, want-2*(m/25))), n, "window %d at :%02d", i, m)
		}
	}
	assert.Equal(t, 20, tr.startsIn(start, windows[3].Add(time.Hour)))
	assert.Equal(t, StatusWaitingWindow, tr.statusAt(day(13, 12, 0)))
	assert.Equal(t, StatusRunning, tr.statusAt(day(16, 2, 30)))
	assert.Equal(t, StatusWaitingWindow, tr.statusAt(day(16, 3, 30)))
	tr.requireStatusSubsequence(t,
		StatusWaitingWindow, StatusRunning, StatusWaitingWindow, StatusRunning, StatusWaitingWindow,
		StatusRunning, StatusWaitingWindow, StatusRunning, StatusCompleted)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 20}, rep.Counts)
	assert.Equal(t, day(18, 2, 25), rep.EndedAt.UTC())
	assert.True(t, rep.NextWindow.IsZero() || rep.Status.Ended())
}

// Started inside a window that spans midnight: devices start at once,
// and what is left when it closes at 02:00 waits for 23:00.
func TestRolloutWindowAcrossMidnight(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	start := time.Date(2026, 6, 10, 0, 30, 0, 0, berlin)
	w := &Window{Start: "23:00", Duration: "3h", Timezone: "Europe/Berlin"}
	_, spec, env, tr := windowFixture(t, "fw-midnight", 10, 2, start, w)
	local := func(h, m int) time.Time { return time.Date(2026, 6, 10, h, m, 0, 0, berlin).UTC() }

	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, 2, tr.startsIn(local(0, 30), local(0, 31)), "started inside: devices start at once")
	assert.Equal(t, 8, tr.startsIn(local(0, 30), local(2, 0)))
	assert.Equal(t, 0, tr.startsIn(local(2, 0), local(23, 0)))
	assert.Equal(t, 2, tr.startsIn(local(23, 0), local(23, 1)))
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, local(23, 25), rep.EndedAt.UTC())
}

// The first window after the rollout starts falls on the spring-forward
// night: 02:30 does not exist on 2026-03-08 in New York and the window
// opens at 03:30 EDT (07:30 UTC).
func TestRolloutWindowAcrossDST(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	start := time.Date(2026, 3, 7, 12, 0, 0, 0, ny) // Saturday, EST
	w := &Window{Start: "02:30", Duration: "1h", Timezone: "America/New_York"}
	_, spec, env, tr := windowFixture(t, "fw-dst", 3, 1, start, w)
	opens := time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)

	var waiting Report
	atTime(env, start, opens.Add(-time.Hour), func() { waiting = queryProgress(t, env) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusWaitingWindow, waiting.Status)
	assert.Equal(t, opens, waiting.NextWindow.UTC())
	assert.Equal(t, 0, tr.startsIn(start, opens))
	assert.Equal(t, 3, tr.startsIn(opens, opens.Add(time.Hour)))
	assert.Equal(t, opens, tr.starts[0].at)
	assert.Equal(t, opens.Add(75*time.Minute), rep.EndedAt.UTC())
	assert.Equal(t, StatusCompleted, rep.Status)
}

// startAt delays the whole rollout: the inventory is not even read before.
func TestRolloutStartAt(t *testing.T) {
	f := newFleet(deviceIDs(5)...)
	spec := validSpec("fw-start-at")
	startAt := phaseStart.Add(3*24*time.Hour + 90*time.Minute)
	spec.StartAt = startAt.In(mustLoad(t, "America/New_York")).Format(time.RFC3339)
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	tr := traceRollout(env, spec.ID)

	var scheduled Report
	listsBefore := -1
	atTime(env, phaseStart, startAt.Add(-time.Minute), func() {
		scheduled = queryProgress(t, env)
		f.mu.Lock()
		listsBefore = len(f.listCalls)
		f.mu.Unlock()
	})
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusScheduled, scheduled.Status)
	assert.Equal(t, 0, scheduled.Started)
	assert.Equal(t, 0, listsBefore, "the inventory is read at startAt")
	assert.Equal(t, phaseStart, tr.firstStatus(StatusScheduled))
	assert.Equal(t, startAt, tr.starts[0].at)
	assert.Equal(t, 5, tr.startsIn(startAt, startAt.Add(time.Second)))
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, phaseStart, rep.StartedAt.UTC())
	tr.requireStatusSubsequence(t, StatusScheduled, StatusRunning, StatusCompleted)

	// a startAt in the past starts at once
	f2 := newFleet(deviceIDs(2)...)
	spec.StartAt = phaseStart.Add(-time.Hour).Format(time.RFC3339)
	env = newRolloutEnv(t, f2, spec)
	env.SetStartTime(phaseStart)
	tr = traceRollout(env, spec.ID)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep = rolloutResult(t, env)
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, phaseStart, tr.starts[0].at)
	assert.NotContains(t, tr.statusSequence(), StatusScheduled)
}

// startAt then a window: scheduled, then waiting for the window.
func TestRolloutStartAtThenWindow(t *testing.T) {
	start := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	w := &Window{Start: "06:00", Duration: "2h", Timezone: "UTC"}
	_, spec, env, tr := windowFixture(t, "fw-start-window", 2, 2, start, w)
	spec.StartAt = start.Add(2 * time.Hour).Format(time.RFC3339)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, time.Date(2026, 6, 11, 6, 0, 0, 0, time.UTC), tr.starts[0].at)
	assert.Equal(t, StatusScheduled, tr.statusAt(start.Add(time.Hour)))
	assert.Equal(t, StatusWaitingWindow, tr.statusAt(start.Add(3*time.Hour)))
	tr.requireStatusSubsequence(t, StatusScheduled, StatusWaitingWindow, StatusRunning, StatusCompleted)
}
