package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The start rate: pushes here are instant (pushOK), so only the rate
// spaces the starts, on the workflow clock.

func rateStarts(t *testing.T, id string, n int, rate Rate, edit func(*fleet)) ([]time.Duration, Report) {
	t.Helper()
	f := newFleet(deviceIDs(n)...)
	if edit != nil {
		edit(f)
	}
	spec := validSpec(id)
	spec.MaxConcurrent = 50
	spec.Rate = &rate
	require.NoError(t, spec.Validate())
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	tr := traceRollout(env, id)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rep := rolloutResult(t, env)
	offsets := make([]time.Duration, len(tr.starts))
	for i, s := range tr.starts {
		offsets[i] = s.at.Sub(phaseStart)
	}
	return offsets, rep
}

func secs(ss ...float64) []time.Duration {
	d := make([]time.Duration, len(ss))
	for i, s := range ss {
		d[i] = sec(s)
	}
	return d
}

func TestRolloutRatePerMinute(t *testing.T) {
	starts, rep := rateStarts(t, "fw-rate", 8, Rate{PerMinute: 6}, nil)
	assert.Equal(t, secs(0, 10, 20, 30, 40, 50, 60, 70), starts, "6 a minute: one every 10s")
	assert.Equal(t, StatusCompleted, rep.Status)
	assert.Equal(t, sec(70), rep.EndedAt.Sub(rep.StartedAt))
}

// Doubling every 3 successes up to 24 a minute: 10s apart, 5s after the
// third success, 2.5s after the sixth, and no faster after the ninth.
func TestRolloutRateRamp(t *testing.T) {
	rate := Rate{PerMinute: 6, RampFactor: 2, RampEvery: 3, MaxPerMinute: 24}
	starts, rep := rateStarts(t, "fw-ramp", 12, rate, nil)
	assert.Equal(t, secs(0, 10, 20, 30, 35, 40, 45, 47.5, 50, 52.5, 55, 57.5), starts)
	assert.Equal(t, Counts{Succeeded: 12}, rep.Counts)

	// The same from perMinuteAfter: the interval after a start is set by
	// the successes before it.
	want := []time.Duration{0}
	for k := 1; k < 12; k++ {
		want = append(want, want[k-1]+time.Duration(float64(time.Minute)/rate.perMinuteAfter(k-1)))
	}
	assert.Equal(t, want, starts)
}

// Failures do not ramp the rate: only successes do.
func TestRolloutRateRampCountsSuccessesOnly(t *testing.T) {
	rate := Rate{PerMinute: 6, RampFactor: 2, RampEvery: 3}
	starts, rep := rateStarts(t, "fw-ramp-fail", 6, rate, func(f *fleet) {
		f.defPush = failingAfter(0)
	})
	assert.Equal(t, secs(0, 10, 20, 30, 40, 50), starts)
	assert.Equal(t, Counts{Failed: 6}, rep.Counts)
}

// maxConcurrent still bounds the devices in flight under a generous rate.
func TestRolloutRateAndConcurrency(t *testing.T) {
	f := newFleet(deviceIDs(6)...)
	f.defPush = pushTaking(3) // 7s each
	spec := validSpec("fw-rate-window")
	spec.MaxConcurrent = 2
	spec.Rate = &Rate{PerMinute: 60} // one a second
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	tr := traceRollout(env, spec.ID)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	rolloutResult(t, env)

	var got []time.Duration
	for _, s := range tr.starts {
		got = append(got, s.at.Sub(phaseStart))
	}
	// 0 and 1s (rate), then each when a slot frees: 7, 8, 14, 15
	assert.Equal(t, secs(0, 1, 7, 8, 14, 15), got)
}

// A continued run holds its first start until the previous run's rate
// allows it (Checkpoint.NextStartAt).
func TestRolloutRateCarriedAcrossContinueAsNew(t *testing.T) {
	f := newFleet(deviceIDs(3)...)
	spec := validSpec("fw-rate-can")
	spec.Rate = &Rate{PerMinute: 6}
	env := newRolloutEnv(t, f, spec)
	env.SetStartTime(phaseStart)
	tr := traceRollout(env, spec.ID)
	cp := &Checkpoint{Selected: 3, StartedAt: phaseStart.Add(-time.Hour), Runs: 1, NextStartAt: phaseStart.Add(sec(4))}
	env.ExecuteWorkflow(FirmwareRollout, spec, cp)
	rep := rolloutResult(t, env)

	var got []time.Duration
	for _, s := range tr.starts {
		got = append(got, s.at.Sub(phaseStart))
	}
	assert.Equal(t, secs(4, 14, 24), got)
	assert.Equal(t, 2, rep.Runs)
	assert.Equal(t, Counts{Succeeded: 3}, rep.Counts)
}
