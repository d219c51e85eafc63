package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// Phases, soaks, gates and approvals, on the test environment's clock.
// Unless said otherwise every push takes one retry interval (1s) of
// simulated time, so phase boundaries are exact.

var phaseStart = time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC) // a Wednesday

func phasedFixture(t *testing.T, id string, n, window int, phases ...Phase) (*fleet, Spec, *testsuite.TestWorkflowEnvironment, *rolloutTrace) {
	t.Helper()
	f := newFleet(deviceIDs(n)...)
	f.defPush = slowPush
	spec := validSpec(id)
	spec.MaxConcurrent = window
	spec.Phases = phases
	require.NoError(t, spec.Validate())
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	return f, spec, env, traceRollout(env, id)
}

func TestRolloutPhasesRunOneAfterAnother(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 10}, {Name: "half", Percent: 50}, {Name: "all", Percent: 100}}
	f, spec, env, tr := phasedFixture(t, "fw-phases", 20, 3, phases...)

	var during []Report
	for _, s := range []float64{0.5, 1.5, 4.5} {
		at(env, sec(s), func() { during = append(during, queryProgress(t, env)) })
	}
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, Counts{Succeeded: 20}, rep.Counts)
	want := []PhaseReport{
		{Name: "canary", Devices: 2, Started: 2, Counts: Counts{Succeeded: 2}, State: PhasePassed},
		{Name: "half", Devices: 8, Started: 8, Counts: Counts{Succeeded: 8}, State: PhasePassed},
		{Name: "all", Devices: 10, Started: 10, Counts: Counts{Succeeded: 10}, State: PhasePassed},
	}
	assert.Equal(t, want, rep.Phases)
	assert.Equal(t, 2, rep.Phase)
	checkInvariants(t, rep, spec)

	// Membership: the phases take the devices in OrderKey order (children
	// started at the same instant may be reported in any order).
	order := inOrderKeyOrder(spec.ID, deviceIDs(20))
	require.Len(t, tr.startedIDs(), 20)
	members := [][]string{order[:2], order[2:10], order[10:]}
	assert.Equal(t, sorted(members[0]), tr.startedSet(phaseStart, phaseStart.Add(sec(1))))
	assert.Equal(t, sorted(members[1]), tr.startedSet(phaseStart.Add(sec(1)), phaseStart.Add(sec(4))))
	assert.Equal(t, sorted(members[2]), tr.startedSet(phaseStart.Add(sec(4)), phaseStart.Add(sec(8))))

	// A phase's devices start only once every device of the one before
	// has finished (phase 1 ends at 1s; phase 2 runs 3+3+2 devices and
	// ends at 4s; phase 3 runs 3+3+3+1 and ends at 8s).
	for p := 1; p < len(members); p++ {
		var lastEnd time.Time
		for _, id := range members[p-1] {
			end := tr.endOf(id)
			require.False(t, end.IsZero(), "%s ended", id)
			if end.After(lastEnd) {
				lastEnd = end
			}
		}
		for _, id := range members[p] {
			assert.False(t, tr.startOf(id).Before(lastEnd), "%s of phase %d started before phase %d ended", id, p, p-1)
		}
		assert.Equal(t, lastEnd, tr.startOf(members[p][0]), "phase %d starts as soon as phase %d ends", p, p-1)
		for _, id := range members[p-1] {
			assert.True(t, tr.startOf(id).Before(tr.startOf(members[p][0])), "%s is in an earlier phase", id)
		}
	}
	assert.Equal(t, phaseStart.Add(sec(1)), tr.startOf(order[2]))
	assert.Equal(t, phaseStart.Add(sec(4)), tr.startOf(order[10]))
	assert.Equal(t, sec(8), rep.EndedAt.Sub(rep.StartedAt))

	// The window is not filled past the phase: at 0.5s only the canary runs.
	require.Len(t, during, 3)
	assert.Equal(t, 0, during[0].Phase)
	assert.Equal(t, 2, during[0].Started)
	assert.Equal(t, 2, during[0].Running)
	assert.Equal(t, PhaseRunning, during[0].Phases[0].State)
	assert.Equal(t, PhasePending, during[0].Phases[1].State)
	assert.Equal(t, 1, during[1].Phase)
	assert.Equal(t, PhasePassed, during[1].Phases[0].State)
	assert.Equal(t, PhaseRunning, during[1].Phases[1].State)
	assert.Equal(t, 5, during[1].Started)
	assert.Equal(t, 2, during[2].Phase)
	assert.Equal(t, 13, during[2].Started)
	for _, d := range during {
		checkInvariants(t, d, spec)
		assert.Equal(t, StatusRunning, d.Status)
	}
	assert.Equal(t, deviceIDs(20), f.pushedDevices())
}

// The same rollout ID picks the same devices for each phase, run after
// run; another rollout ID spreads its canary elsewhere.
func TestRolloutPhaseMembershipIsDeterministic(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 10}, {Name: "all", Percent: 100}}
	canary := func(id string) []string {
		_, spec, env, tr := phasedFixture(t, id, 50, 10, phases...)
		env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
		rep := rolloutResult(t, env)
		require.Equal(t, 5, rep.Phases[0].Devices)
		return tr.startedSet(phaseStart, phaseStart.Add(sec(1)))
	}
	first, again := canary("fw-det"), canary("fw-det")
	assert.Equal(t, first, again, "the canary is reproducible")
	assert.Equal(t, sorted(inOrderKeyOrder("fw-det", deviceIDs(50))[:5]), first)
	assert.Len(t, first, 5)
	assert.NotEqual(t, deviceIDs(50)[:5], first, "the canary is not the head of the inventory")
	assert.NotEqual(t, first, canary("fw-det-2"), "another rollout picks another canary")
}

// A 48-hour soak between phases: the rollout soaks (query and search
// attribute), and the next phase starts exactly when the soak ends. The
// last phase's soak is not waited for.
func TestRolloutSoakBetweenPhases(t *testing.T) {
	phases := []Phase{
		{Name: "canary", Percent: 10, Soak: "48h"},
		{Name: "rest", Percent: 100, Soak: "24h"},
	}
	_, spec, env, tr := phasedFixture(t, "fw-soak", 20, 3, phases...)
	canaryEnd := phaseStart.Add(sec(1))

	var soaking1, soaking2, justBefore Report
	atTime(env, phaseStart, canaryEnd.Add(time.Hour), func() { soaking1 = queryProgress(t, env) })
	atTime(env, phaseStart, canaryEnd.Add(47*time.Hour), func() { soaking2 = queryProgress(t, env) })
	atTime(env, phaseStart, canaryEnd.Add(48*time.Hour-time.Second), func() { justBefore = queryProgress(t, env) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	for _, s := range []Report{soaking1, soaking2, justBefore} {
		checkInvariants(t, s, spec)
		assert.Equal(t, StatusSoaking, s.Status)
		assert.Equal(t, 2, s.Started)
		assert.Equal(t, 0, s.Running)
		assert.Equal(t, PhaseSoaking, s.Phases[0].State)
		assert.Equal(t, PhasePending, s.Phases[1].State)
	}
	assert.Equal(t, StatusSoaking, tr.statusAt(canaryEnd.Add(24*time.Hour)))
	assert.Equal(t, canaryEnd, tr.firstStatus(StatusSoaking))

	order := inOrderKeyOrder(spec.ID, deviceIDs(20))
	assert.Equal(t, canaryEnd.Add(48*time.Hour), tr.startOf(order[2]), "the next phase starts when the soak ends")
	assert.Equal(t, 2, tr.startsIn(phaseStart, canaryEnd.Add(48*time.Hour)))
	tr.requireStatusSubsequence(t, StatusRunning, StatusSoaking, StatusRunning, StatusCompleted)

	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, []string{PhasePassed, PhasePassed}, []string{rep.Phases[0].State, rep.Phases[1].State})
	// 1s canary + 48h + 18 devices in 6 rounds; no soak after the last phase
	assert.Equal(t, 48*time.Hour+sec(7), rep.EndedAt.Sub(rep.StartedAt))
}

// gateFixture: 10 devices, a canary of 2 that must all succeed, and one
// of the canary devices fails after a transient retry.
func gateFixture(t *testing.T, id, soak string) (*fleet, Spec, *testsuite.TestWorkflowEnvironment, *rolloutTrace, []string) {
	phases := []Phase{
		{Name: "canary", Percent: 20, MinSuccessPercent: 100, Soak: soak},
		{Name: "rest", Percent: 100, MinSuccessPercent: 50},
	}
	f, spec, env, tr := phasedFixture(t, id, 10, 5, phases...)
	order := inOrderKeyOrder(spec.ID, deviceIDs(10))
	f.pushes[order[1]] = failingAfter(1)
	return f, spec, env, tr, order
}

func TestRolloutGateHaltsThenResumeOverrides(t *testing.T) {
	for _, soak := range []string{"", "6h"} {
		t.Run("soak="+soak, func(t *testing.T) {
			f, spec, env, tr, order := gateFixture(t, "fw-gate", soak)
			haltedAt := phaseStart.Add(sec(1))
			resumeAt := haltedAt.Add(72 * time.Hour)

			var halted Report
			var approve, resume, resumeAgain *updateResult
			atTime(env, phaseStart, haltedAt.Add(71*time.Hour), func() {
				halted = queryProgress(t, env)
				approve = sendUpdate(env, ApproveUpdate)
			})
			atTime(env, phaseStart, resumeAt, func() { resume = sendUpdate(env, ResumeUpdate) })
			atTime(env, phaseStart, resumeAt.Add(sec(0.5)), func() { resumeAgain = sendUpdate(env, ResumeUpdate) })
			env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
			rep := rolloutResult(t, env)

			// halted for three days: nothing starts, the reason names the
			// phase and the numbers
			checkInvariants(t, halted, spec)
			assert.Equal(t, StatusHalted, halted.Status)
			assert.Equal(t, "phase canary: 1 of 2 devices succeeded (50.0%), below its gate of 100%", halted.Reason)
			assert.Equal(t, PhaseHalted, halted.Phases[0].State)
			assert.Equal(t, Counts{Succeeded: 1, Failed: 1}, halted.Phases[0].Counts)
			assert.Equal(t, 2, halted.Started)
			assert.Equal(t, haltedAt, tr.firstStatus(StatusHalted))
			assert.Equal(t, StatusHalted, tr.statusAt(resumeAt.Add(-time.Second)))
			assert.Equal(t, 2, tr.startsIn(phaseStart, resumeAt))
			assert.ErrorContains(t, approve.rejected, "not awaiting approval (it is halted)")

			require.True(t, resume.accepted)
			require.NoError(t, resume.err)
			assert.ErrorContains(t, resumeAgain.rejected, "neither paused nor halted")

			// the override: the rest starts after the soak, if any
			nextStart := resumeAt
			if soak != "" {
				nextStart = resumeAt.Add(6 * time.Hour)
				assert.Equal(t, StatusSoaking, tr.statusAt(resumeAt.Add(time.Hour)))
			}
			assert.Equal(t, nextStart, tr.startOf(order[2]))
			assert.Equal(t, StatusCompletedWithFailures, rep.Status)
			assert.Equal(t, "1 of 10 devices failed", rep.Reason)
			assert.Equal(t, Counts{Succeeded: 9, Failed: 1}, rep.Counts)
			assert.Equal(t, PhaseOverridden, rep.Phases[0].State, "the canary's gate was overridden")
			assert.Equal(t, PhasePassed, rep.Phases[1].State)
			assert.Equal(t, 2, f.pushCount(order[1]), "the failing canary device: a transient failure then a refusal")
			require.Len(t, rep.Failures, 1)
			assert.Equal(t, order[1], rep.Failures[0].DeviceID)
			tr.requireStatusSubsequence(t, StatusRunning, StatusHalted, StatusRunning, StatusCompletedWithFailures)
			checkInvariants(t, rep, spec)
		})
	}
}

// The gate of the last phase halts too, and a cancel then ends the
// rollout with every device accounted for.
func TestRolloutGateOfLastPhase(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 20}, {Name: "rest", Percent: 100, MinSuccessPercent: 90}}
	f, spec, env, _ := phasedFixture(t, "fw-last-gate", 10, 5, phases...)
	order := inOrderKeyOrder(spec.ID, deviceIDs(10))
	f.pushes[order[5]] = failingAfter(0)
	f.pushes[order[6]] = failingAfter(0)
	var halted Report
	at(env, time.Hour, func() { halted = queryProgress(t, env) })
	at(env, 2*time.Hour, func() { sendUpdate(env, ResumeUpdate) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusHalted, halted.Status)
	assert.Equal(t, "phase rest: 6 of 8 devices succeeded (75.0%), below its gate of 90%", halted.Reason)
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, PhaseOverridden, rep.Phases[1].State)
	assert.Equal(t, 2*time.Hour, rep.EndedAt.Sub(rep.StartedAt))
}

// Cancelling a halted rollout ends it; the halted phase stays halted.
func TestRolloutCancelWhileHalted(t *testing.T) {
	f, spec, env, tr, _ := gateFixture(t, "fw-gate-cancel", "6h")
	cancelAt := phaseStart.Add(10 * time.Hour)
	var cancel *updateResult
	atTime(env, phaseStart, cancelAt, func() { cancel = sendUpdate(env, CancelUpdate, CancelRequest{}) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.True(t, cancel.accepted)
	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, "cancelled by the operator", rep.Reason)
	assert.Equal(t, Counts{Succeeded: 1, Failed: 1, Cancelled: 8}, rep.Counts)
	assert.Equal(t, PhaseHalted, rep.Phases[0].State, "a cancelled halted phase did not soak")
	assert.Equal(t, PhasePending, rep.Phases[1].State)
	assert.Equal(t, 0, rep.Phases[1].Started)
	assert.Equal(t, cancelAt, rep.EndedAt.UTC())
	assert.Len(t, f.pushedDevices(), 2)
	tr.requireStatusSubsequence(t, StatusHalted, StatusCancelling, StatusCancelled)
	checkInvariants(t, rep, spec)
}

// A phase that requires approval waits for it however long it takes; the
// approve validator refuses a rollout that is not waiting.
func TestRolloutApprovalFlow(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 10}, {Name: "rest", Percent: 100, RequireApproval: true}}
	_, spec, env, tr := phasedFixture(t, "fw-approve", 10, 5, phases...)
	canaryEnd := phaseStart.Add(sec(1))
	approveAt := canaryEnd.Add(5 * 24 * time.Hour)

	var early, approve, again *updateResult
	var waiting Report
	at(env, sec(0.5), func() { early = sendUpdate(env, ApproveUpdate) })
	atTime(env, phaseStart, approveAt.Add(-time.Hour), func() { waiting = queryProgress(t, env) })
	atTime(env, phaseStart, approveAt, func() { approve = sendUpdate(env, ApproveUpdate) })
	atTime(env, phaseStart, approveAt.Add(sec(0.5)), func() { again = sendUpdate(env, ApproveUpdate) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.False(t, early.accepted)
	assert.ErrorContains(t, early.rejected, "not awaiting approval (it is running)")

	checkInvariants(t, waiting, spec)
	assert.Equal(t, StatusAwaitingApproval, waiting.Status)
	assert.Equal(t, 1, waiting.Phase)
	assert.Equal(t, PhasePassed, waiting.Phases[0].State)
	assert.Equal(t, PhaseAwaitingApproval, waiting.Phases[1].State)
	assert.False(t, waiting.Phases[1].Approved)
	assert.Equal(t, 1, waiting.Started)
	assert.Equal(t, canaryEnd, tr.firstStatus(StatusAwaitingApproval))
	assert.Equal(t, StatusAwaitingApproval, tr.statusAt(approveAt.Add(-time.Second)))
	assert.Equal(t, 1, tr.startsIn(phaseStart, approveAt), "nothing starts before the approval")

	require.True(t, approve.accepted)
	require.NoError(t, approve.err)
	assert.ErrorContains(t, again.rejected, "not awaiting approval")

	order := inOrderKeyOrder(spec.ID, deviceIDs(10))
	assert.Equal(t, approveAt, tr.startOf(order[1]), "the phase starts on approval")
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.True(t, rep.Phases[1].Approved)
	assert.False(t, rep.Phases[0].Approved)
	assert.Equal(t, PhasePassed, rep.Phases[1].State)
	tr.requireStatusSubsequence(t, StatusRunning, StatusAwaitingApproval, StatusRunning, StatusCompleted)
}

// The first phase may require approval too: nothing starts before it.
func TestRolloutApprovalOfFirstPhase(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 50, RequireApproval: true}, {Name: "rest", Percent: 100}}
	f, spec, env, tr := phasedFixture(t, "fw-approve-first", 4, 5, phases...)
	var waiting Report
	at(env, 36*time.Hour, func() { waiting = queryProgress(t, env) })
	at(env, 48*time.Hour, func() { sendUpdate(env, ApproveUpdate) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusAwaitingApproval, waiting.Status)
	assert.Equal(t, 4, waiting.Selected)
	assert.Equal(t, 0, waiting.Started)
	assert.Equal(t, []int{2, 2}, []int{waiting.Phases[0].Devices, waiting.Phases[1].Devices})
	assert.Equal(t, phaseStart.Add(48*time.Hour), tr.starts[0].at)
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Len(t, f.pushedDevices(), 4)
}

// Without an approval within approvalTimeout the rollout halts; resume
// overrides and the phase runs.
func TestRolloutApprovalTimeoutHalts(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 10}, {Name: "rest", Percent: 100, RequireApproval: true, ApprovalTimeout: "2h"}}
	_, spec, env, tr := phasedFixture(t, "fw-approve-timeout", 10, 5, phases...)
	canaryEnd := phaseStart.Add(sec(1))
	var before, halted Report
	var approve, resume *updateResult
	atTime(env, phaseStart, canaryEnd.Add(time.Hour), func() { before = queryProgress(t, env) })
	atTime(env, phaseStart, canaryEnd.Add(3*time.Hour), func() {
		halted = queryProgress(t, env)
		approve = sendUpdate(env, ApproveUpdate)
	})
	atTime(env, phaseStart, canaryEnd.Add(4*time.Hour), func() { resume = sendUpdate(env, ResumeUpdate) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusAwaitingApproval, before.Status)
	assert.Equal(t, StatusHalted, halted.Status)
	assert.Equal(t, "phase rest was not approved within 2h", halted.Reason)
	assert.Equal(t, PhaseHalted, halted.Phases[1].State)
	assert.Equal(t, canaryEnd.Add(2*time.Hour), tr.firstStatus(StatusHalted))
	assert.ErrorContains(t, approve.rejected, "not awaiting approval (it is halted)")
	require.True(t, resume.accepted)

	order := inOrderKeyOrder(spec.ID, deviceIDs(10))
	assert.Equal(t, canaryEnd.Add(4*time.Hour), tr.startOf(order[1]))
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Empty(t, rep.Reason)
	assert.Equal(t, Counts{Succeeded: 10}, rep.Counts)
}

// Pausing during a soak holds the next phase after the soak ends, until
// resume.
func TestRolloutPauseDuringSoakHoldsNextPhase(t *testing.T) {
	phases := []Phase{{Name: "canary", Percent: 20, Soak: "2h"}, {Name: "rest", Percent: 100}}
	_, spec, env, tr := phasedFixture(t, "fw-soak-pause", 10, 5, phases...)
	resumeAt := phaseStart.Add(5 * time.Hour)
	var pause, resume *updateResult
	var held Report
	at(env, time.Hour, func() { pause = sendUpdate(env, PauseUpdate) })
	at(env, 3*time.Hour, func() { held = queryProgress(t, env) })
	atTime(env, phaseStart, resumeAt, func() { resume = sendUpdate(env, ResumeUpdate) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	require.True(t, pause.accepted)
	assert.Equal(t, StatusPaused, pause.report.Status)
	assert.Equal(t, StatusPaused, held.Status, "the soak is over, the pause holds")
	assert.Equal(t, 2, held.Started)
	assert.Equal(t, PhasePending, held.Phases[1].State)
	require.True(t, resume.accepted)
	assert.Equal(t, 2, tr.startsIn(phaseStart, resumeAt))
	order := inOrderKeyOrder(spec.ID, deviceIDs(10))
	assert.Equal(t, resumeAt, tr.startOf(order[2]))
	assert.Equal(t, StatusCompleted, rep.Status)
	tr.requireStatusSubsequence(t, StatusSoaking, StatusPaused, StatusRunning, StatusCompleted)
}

// A forced cancel during a phase cancels its in-flight pushes; no later
// phase starts.
func TestRolloutForceCancelDuringPhase(t *testing.T) {
	f := newFleet(deviceIDs(10)...)
	f.defPush = blockingSecondPush(f)
	spec := validSpec("fw-phase-force")
	spec.MaxConcurrent = 5
	spec.Device.HeartbeatTimeout = "200ms"
	spec.Phases = []Phase{{Name: "canary", Percent: 20}, {Name: "rest", Percent: 100}}
	env := newRolloutEnv(t, f, spec)
	at(env, sec(1.05), func() { sendUpdate(env, CancelUpdate, CancelRequest{Force: true}) })
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)

	assert.Equal(t, StatusCancelled, rep.Status)
	assert.Equal(t, Counts{Cancelled: 10}, rep.Counts)
	assert.Equal(t, Counts{Cancelled: 2}, rep.Phases[0].Counts)
	assert.Equal(t, 2, rep.Phases[0].Started)
	assert.Equal(t, 0, rep.Phases[1].Started)
	assert.Len(t, f.pushedDevices(), 2)
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.pushCancelled == 2
	}, 5*time.Second, 10*time.Millisecond, "in-flight pushes were not cancelled")
	checkInvariants(t, rep, spec)
}

// pause, resume and cancel in every waiting state: each change shows in
// the query and in the RolloutStatus search attribute.
func TestRolloutControlsInEveryState(t *testing.T) {
	type state struct {
		name  string
		setup func(*Spec, *fleet)
		want  Status
		// after the pause and resume, the status is want again, except a
		// halted rollout: resume overrides its gate and it carries on
		afterResume Status
		started     int
	}
	states := []state{
		{"soaking", func(s *Spec, _ *fleet) {
			s.Phases = []Phase{{Name: "canary", Percent: 20, Soak: "10h"}, {Name: "rest", Percent: 100}}
		}, StatusSoaking, StatusSoaking, 2},
		{"awaiting approval", func(s *Spec, _ *fleet) {
			s.Phases = []Phase{{Name: "canary", Percent: 20}, {Name: "rest", Percent: 100, RequireApproval: true}}
		}, StatusAwaitingApproval, StatusAwaitingApproval, 2},
		{"outside the window", func(s *Spec, _ *fleet) {
			s.Window = &Window{Start: "00:00", Duration: "1h", Timezone: "UTC"} // opens in 12h
		}, StatusWaitingWindow, StatusWaitingWindow, 0},
		{"scheduled", func(s *Spec, _ *fleet) {
			s.StartAt = phaseStart.Add(10 * time.Hour).Format(time.RFC3339)
		}, StatusScheduled, StatusScheduled, 0},
		{"halted", func(s *Spec, f *fleet) {
			s.Phases = []Phase{{Name: "canary", Percent: 20, MinSuccessPercent: 100}, {Name: "rest", Percent: 100}}
			f.pushes[inOrderKeyOrder(s.ID, deviceIDs(10))[0]] = failingAfter(1)
		}, StatusHalted, StatusRunning, 2},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			f := newFleet(deviceIDs(10)...)
			f.defPush = slowPush
			spec := validSpec("fw-every-state")
			spec.MaxConcurrent = 5
			st.setup(&spec, f)
			require.NoError(t, spec.Validate())
			env := newRolloutEnv(t, f, spec)
			env.SetStartTime(phaseStart)
			tr := traceRollout(env, spec.ID)

			var inState, paused, resumed Report
			var pause, resume, cancel *updateResult
			at(env, 30*time.Minute, func() { inState = queryProgress(t, env) })
			at(env, time.Hour, func() { pause = sendUpdate(env, PauseUpdate) })
			at(env, 2*time.Hour, func() { paused = queryProgress(t, env) })
			at(env, 3*time.Hour, func() { resume = sendUpdate(env, ResumeUpdate) })
			at(env, 3*time.Hour+sec(0.5), func() { resumed = queryProgress(t, env) })
			at(env, 4*time.Hour, func() { cancel = sendUpdate(env, CancelUpdate, CancelRequest{}) })
			env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
			rep := rolloutResult(t, env)

			assert.Equal(t, st.want, inState.Status)
			assert.Equal(t, st.want, tr.statusAt(phaseStart.Add(30*time.Minute)))
			assert.Equal(t, st.started, inState.Started)

			require.True(t, pause.accepted)
			assert.Equal(t, StatusPaused, pause.report.Status)
			assert.Equal(t, StatusPaused, paused.Status)
			assert.Equal(t, StatusPaused, tr.statusAt(phaseStart.Add(2*time.Hour)))
			assert.Equal(t, st.started, paused.Started)

			require.True(t, resume.accepted)
			assert.Equal(t, st.afterResume, resumed.Status)
			assert.Equal(t, st.afterResume, tr.statusAt(phaseStart.Add(3*time.Hour+sec(0.5))))

			if st.afterResume == StatusRunning {
				// the overridden rollout completed before the cancel
				assert.Nil(t, cancel, "the rollout ended before")
				assert.Equal(t, StatusCompletedWithFailures, rep.Status)
				assert.Equal(t, PhaseOverridden, rep.Phases[0].State)
				return
			}
			require.True(t, cancel.accepted)
			assert.Equal(t, StatusCancelled, rep.Status)
			assert.Equal(t, phaseStart.Add(4*time.Hour), rep.EndedAt.UTC())
			assert.Equal(t, st.started, rep.Started)
			assert.Len(t, f.pushedDevices(), st.started)
			assert.Equal(t, rep.Selected-st.started, rep.Counts.Cancelled)
			tr.requireStatusSubsequence(t, st.want, StatusPaused, st.want, StatusCancelling, StatusCancelled)
			checkInvariants(t, rep, spec)
		})
	}
}

// Phases survive continue-as-new: an approval is given once, and a gate
// judges the phase's devices of every run. 120 devices: a canary of 12,
// then 108 needing approval and 95% success, of which 6 fail (94.4%); runs
// hand over every ~45 devices.
func TestRolloutPhasesAcrossContinueAsNew(t *testing.T) {
	ids := deviceIDs(120)
	f := newFleet(ids...)
	spec := validSpec("fw-phases-can")
	spec.MaxConcurrent = 5
	spec.MaxHistoryEvents = 300
	spec.Phases = []Phase{
		{Name: "canary", Percent: 10},
		{Name: "rest", Percent: 100, RequireApproval: true, MinSuccessPercent: 95},
	}
	o := inOrderKeyOrder(spec.ID, ids)
	for _, p := range []int{20, 40, 60, 80, 100, 110} {
		f.pushes[o[p]] = failingAfter(0)
	}
	var approvals []*updateResult
	var halted Report
	haltedRun := 0
	rep, runs := runAcrossContinueAsNew(t, f, spec, nil, func(env *testsuite.TestWorkflowEnvironment, run int) {
		if run == 1 {
			at(env, time.Hour, func() { approvals = append(approvals, sendUpdate(env, ApproveUpdate)) })
		}
		// only a run that waits gets this far on the clock
		at(env, 9*time.Hour, func() {
			halted = queryProgress(t, env)
			haltedRun = run
		})
		at(env, 10*time.Hour, func() { sendUpdate(env, ResumeUpdate) })
	})

	require.GreaterOrEqual(t, len(runs), 3)
	require.Len(t, approvals, 1)
	assert.True(t, approvals[0].accepted)
	assert.Equal(t, len(runs), haltedRun, "only the last run waited: no second approval")
	assert.Equal(t, StatusHalted, halted.Status)
	assert.Equal(t, "phase rest: 102 of 108 devices succeeded (94.4%), below its gate of 95%", halted.Reason)
	for i, r := range runs[:len(runs)-1] {
		assert.True(t, r.checkpoint.Phases[1].Approved, "run %d hands over the approval", i+1)
		assert.Equal(t, 1, r.checkpoint.Phase)
	}
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, Counts{Succeeded: 114, Failed: 6}, rep.Counts)
	assert.Equal(t, []PhaseReport{
		{Name: "canary", Devices: 12, Started: 12, Counts: Counts{Succeeded: 12}, State: PhasePassed},
		{Name: "rest", Devices: 108, Started: 108, Counts: Counts{Succeeded: 102, Failed: 6}, State: PhaseOverridden, Approved: true},
	}, rep.Phases)
	assert.Equal(t, ids, f.pushedDevices())
}
