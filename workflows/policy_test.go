package workflows

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Pure tests of the policy helpers: the phase plan, the maintenance
// window schedule and the rate ramp.

func phasesOf(percents ...float64) []Phase {
	phases := make([]Phase, len(percents))
	for i, p := range percents {
		phases[i] = Phase{Name: fmt.Sprintf("p%d", i), Percent: p}
	}
	return phases
}

func TestPhasePlan(t *testing.T) {
	cases := []struct {
		name     string
		percents []float64
		selected int
		ends     []int
	}{
		{"no phases: one phase of all", nil, 7, []int{7}},
		{"5% canary of 11 is one device", []float64{5, 100}, 11, []int{1, 11}},
		{"10/50/100 of 10", []float64{10, 50, 100}, 10, []int{1, 5, 10}},
		{"10/50/100 of 20", []float64{10, 50, 100}, 20, []int{2, 10, 20}},
		{"exact multiples do not round up", []float64{25, 50, 75, 100}, 8, []int{2, 4, 6, 8}},
		{"rounding is up", []float64{10, 100}, 15, []int{2, 15}},
		{"tiny percents still take a device each", []float64{1, 2, 3, 100}, 10, []int{1, 2, 3, 10}},
		{"0.1% of a small fleet", []float64{0.1, 0.2, 100}, 50, []int{1, 2, 50}},
		{"phases past the end are empty only when no device remains", []float64{0.1, 0.2, 100}, 1, []int{1, 1, 1}},
		{"two devices, four phases", []float64{50, 60, 70, 100}, 2, []int{1, 2, 2, 2}},
		{"one device", []float64{10, 100}, 1, []int{1, 1}},
		{"nothing selected", []float64{10, 100}, 0, []int{0, 0}},
		{"large fleet", []float64{1, 10, 100}, 12345, []int{124, 1235, 12345}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := validSpec("fw-plan")
			spec.Phases = phasesOf(tc.percents...)
			phases, ends := spec.PhasePlan(tc.selected)
			assert.Equal(t, tc.ends, ends)
			if tc.percents == nil {
				assert.Equal(t, []Phase{{Name: "all", Percent: 100}}, phases)
			} else {
				assert.Equal(t, spec.Phases, phases)
			}
		})
	}
}

// Whatever the percents and the fleet size, the plan is cumulative, covers
// every device, never leaves a phase empty while devices remain and never
// gives a phase fewer devices than its percent asks for.
func TestPhasePlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		n := rng.IntN(5) + 1
		percents := make([]float64, 0, n)
		prev := 0.0
		for j := 0; j < n-1; j++ {
			p := prev + rng.Float64()*(100-prev)/2
			if p <= prev || p >= 100 {
				break
			}
			percents = append(percents, math.Round(p*100)/100)
			prev = percents[len(percents)-1]
		}
		percents = append(percents, 100)
		selected := rng.IntN(300)
		spec := validSpec("fw-plan")
		spec.Phases = phasesOf(percents...)
		require.NoError(t, spec.Validate(), "percents %v", percents)

		_, ends := spec.PhasePlan(selected)
		require.Len(t, ends, len(percents))
		require.Equal(t, selected, ends[len(ends)-1], "percents %v of %d: %v", percents, selected, ends)
		prevEnd := 0
		for j, end := range ends {
			want := int(math.Ceil(percents[j] * float64(selected) / 100))
			require.GreaterOrEqual(t, end, min(want, selected), "percents %v of %d: %v", percents, selected, ends)
			require.LessOrEqual(t, end, max(want, prevEnd+1), "percents %v of %d: %v", percents, selected, ends)
			if prevEnd < selected {
				require.Greater(t, end, prevEnd, "empty phase %d while devices remain: percents %v of %d: %v", j, percents, selected, ends)
			} else {
				require.Equal(t, selected, end)
			}
			prevEnd = end
		}
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func mustSchedule(t *testing.T, w Window) windowSchedule {
	t.Helper()
	require.NoError(t, w.validate())
	ws, err := w.schedule()
	require.NoError(t, err)
	return ws
}

// windowCase: at `now` the window is open or not, and changes at `change`.
type windowCase struct {
	name   string
	now    time.Time
	open   bool
	change time.Time
}

func checkWindow(t *testing.T, ws windowSchedule, cases []windowCase) {
	t.Helper()
	for _, c := range cases {
		open, change := ws.at(c.now)
		assert.Equal(t, c.open, open, "%s: open at %s", c.name, c.now)
		assert.True(t, c.change.Equal(change), "%s: at %s the window changes at %s, want %s",
			c.name, c.now, change.UTC(), c.change.UTC())
	}
}

func TestWindowSchedulePlain(t *testing.T) {
	ws := mustSchedule(t, Window{Start: "02:00", Duration: "2h", Timezone: "UTC"})
	d := func(day, h, m, s int) time.Time { return time.Date(2026, 6, day, h, m, s, 0, time.UTC) }
	checkWindow(t, ws, []windowCase{
		{"before", d(10, 1, 59, 59), false, d(10, 2, 0, 0)},
		{"at the start", d(10, 2, 0, 0), true, d(10, 4, 0, 0)},
		{"inside", d(10, 3, 59, 59), true, d(10, 4, 0, 0)},
		{"at the end", d(10, 4, 0, 0), false, d(11, 2, 0, 0)},
		{"evening", d(10, 23, 0, 0), false, d(11, 2, 0, 0)},
		{"month end", time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC), false, time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)},
	})

	// The start is local time of the window's zone, whatever zone now is in.
	tokyo := mustSchedule(t, Window{Start: "09:30", Duration: "30m", Timezone: "Asia/Tokyo"})
	checkWindow(t, tokyo, []windowCase{
		{"utc before", time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC), false, time.Date(2026, 6, 10, 0, 30, 0, 0, time.UTC)},
		{"utc inside", time.Date(2026, 6, 10, 0, 45, 0, 0, time.UTC), true, time.Date(2026, 6, 10, 1, 0, 0, 0, time.UTC)},
	})
}

func TestWindowScheduleAcrossMidnight(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	ws := mustSchedule(t, Window{Start: "23:00", Duration: "3h", Timezone: "Europe/Berlin"})
	d := func(day, h, m int) time.Time { return time.Date(2026, 6, day, h, m, 0, 0, berlin) }
	checkWindow(t, ws, []windowCase{
		{"evening before", d(10, 22, 0), false, d(10, 23, 0)},
		{"before midnight", d(10, 23, 30), true, d(11, 2, 0)},
		{"after midnight: yesterday's window", d(11, 1, 0), true, d(11, 2, 0)},
		{"at its end", d(11, 2, 0), false, d(11, 23, 0)},
	})
}

func TestWindowScheduleDays(t *testing.T) {
	// 2026-06-15 is a Monday.
	ws := mustSchedule(t, Window{Start: "23:00", Duration: "3h", Timezone: "UTC", Days: []string{"mon"}})
	d := func(day, h, m int) time.Time { return time.Date(2026, 6, day, h, m, 0, 0, time.UTC) }
	require.Equal(t, time.Monday, d(15, 0, 0).Weekday())
	checkWindow(t, ws, []windowCase{
		{"sunday night", d(14, 23, 30), false, d(15, 23, 0)},
		{"monday night", d(15, 23, 30), true, d(16, 2, 0)},
		{"tuesday early: monday's window", d(16, 1, 0), true, d(16, 2, 0)},
		{"tuesday after it", d(16, 2, 0), false, d(22, 23, 0)},
		{"tuesday night: not a window day", d(16, 23, 30), false, d(22, 23, 0)},
	})

	weekdays := mustSchedule(t, Window{Start: "02:00", Duration: "2h", Timezone: "America/New_York",
		Days: []string{"mon", "tue", "wed", "thu", "fri"}})
	ny := mustLoad(t, "America/New_York")
	checkWindow(t, weekdays, []windowCase{
		{"friday noon: next is monday", time.Date(2026, 6, 12, 12, 0, 0, 0, ny), false, time.Date(2026, 6, 15, 2, 0, 0, 0, ny)},
		{"saturday inside the hour", time.Date(2026, 6, 13, 3, 0, 0, 0, ny), false, time.Date(2026, 6, 15, 2, 0, 0, 0, ny)},
		{"friday inside", time.Date(2026, 6, 12, 3, 0, 0, 0, ny), true, time.Date(2026, 6, 12, 4, 0, 0, 0, ny)},
	})
}

// America/New_York springs forward on 2026-03-08 at 02:00 EST (07:00 UTC)
// to 03:00 EDT, and falls back on 2026-11-01 at 02:00 EDT (06:00 UTC) to
// 01:00 EST. Window starts are local wall-clock times.
func TestWindowScheduleSpringForward(t *testing.T) {
	utc := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, time.UTC) }

	// 02:30 does not exist on 2026-03-08: the start moves forward with
	// the clock to 03:30 EDT (07:30 UTC), not back to 01:30 EST.
	ws := mustSchedule(t, Window{Start: "02:30", Duration: "1h", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"saturday 02:30 EST", utc(7, 7, 30), true, utc(7, 8, 30)},
		{"saturday evening", utc(8, 0, 0), false, utc(8, 7, 30)},
		{"01:30 EST is not the window", utc(8, 6, 30), false, utc(8, 7, 30)},
		{"03:30 EDT is", utc(8, 7, 30), true, utc(8, 8, 30)},
		{"after it", utc(8, 8, 30), false, utc(9, 6, 30)},
		{"monday 02:30 EDT", utc(9, 6, 30), true, utc(9, 7, 30)},
	})

	// A start at the very beginning of the gap.
	ws = mustSchedule(t, Window{Start: "02:00", Duration: "30m", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"02:00 becomes 03:00 EDT", utc(8, 6, 0), false, utc(8, 7, 0)},
	})

	// A window across the switch lasts its duration of real time: 3h from
	// 01:00 EST ends at 05:00 EDT on the wall clock.
	ws = mustSchedule(t, Window{Start: "01:00", Duration: "3h", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"opens 01:00 EST", utc(8, 5, 0), false, utc(8, 6, 0)},
		{"open across the switch", utc(8, 8, 30), true, utc(8, 9, 0)},
		{"next day 01:00 EDT", utc(8, 9, 0), false, utc(9, 5, 0)},
	})

	// Europe/Berlin springs forward on 2026-03-29 at 02:00 CET (01:00 UTC).
	ws = mustSchedule(t, Window{Start: "02:30", Duration: "1h", Timezone: "Europe/Berlin"})
	checkWindow(t, ws, []windowCase{
		{"berlin 02:30 becomes 03:30 CEST", utc(29, 0, 0), false, utc(29, 1, 30)},
		{"berlin next day", utc(29, 1, 30), true, utc(29, 2, 30)},
	})
}

func TestWindowScheduleFallBack(t *testing.T) {
	nov := func(day, h, m int) time.Time { return time.Date(2026, 11, day, h, m, 0, 0, time.UTC) }

	// 01:30 happens twice on 2026-11-01: the window is the first (EDT).
	ws := mustSchedule(t, Window{Start: "01:30", Duration: "1h", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"first 01:30 (EDT)", nov(1, 5, 30), true, nov(1, 6, 30)},
		{"second 01:30 (EST) is not a new window", nov(1, 6, 30), false, nov(2, 6, 30)},
	})

	// 02:00 EDT on Saturday, 02:00 EST on Sunday: 25 hours apart.
	ws = mustSchedule(t, Window{Start: "02:00", Duration: "2h", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"saturday 02:00 EDT", time.Date(2026, 10, 31, 6, 0, 0, 0, time.UTC), true, time.Date(2026, 10, 31, 8, 0, 0, 0, time.UTC)},
		{"saturday after", time.Date(2026, 10, 31, 8, 0, 0, 0, time.UTC), false, nov(1, 7, 0)},
		{"sunday second 01:30", nov(1, 6, 30), false, nov(1, 7, 0)},
		{"sunday 02:00 EST", nov(1, 7, 0), true, nov(1, 9, 0)},
	})

	// A window across the switch: 4h from 00:00 EDT ends at 03:00 EST.
	ws = mustSchedule(t, Window{Start: "00:00", Duration: "4h", Timezone: "America/New_York"})
	checkWindow(t, ws, []windowCase{
		{"across fall-back", nov(1, 7, 30), true, nov(1, 8, 0)},
		{"ends 03:00 EST", nov(1, 8, 0), false, nov(2, 5, 0)},
	})
}

func TestWindowSchedule24h(t *testing.T) {
	daily := mustSchedule(t, Window{Start: "06:00", Duration: "24h", Timezone: "UTC"})
	d := func(day, h, m int) time.Time { return time.Date(2026, 6, day, h, m, 0, 0, time.UTC) }
	checkWindow(t, daily, []windowCase{
		{"always open", d(10, 5, 59), true, d(10, 6, 0)},
		{"at the boundary the next day's window is open", d(10, 6, 0), true, d(11, 6, 0)},
	})

	monday := mustSchedule(t, Window{Start: "06:00", Duration: "24h", Timezone: "UTC", Days: []string{"mon"}})
	checkWindow(t, monday, []windowCase{
		{"monday", d(15, 12, 0), true, d(16, 6, 0)},
		{"tuesday morning", d(16, 5, 59), true, d(16, 6, 0)},
		{"tuesday after", d(16, 6, 0), false, d(22, 6, 0)},
	})

	// A Saturday window of 24h from 23:30 EST on 2026-03-07 spans the
	// spring-forward night and ends on Monday at 00:30 EDT: it is still
	// open two calendar days after the day it started on.
	sat := mustSchedule(t, Window{Start: "23:30", Duration: "24h", Timezone: "America/New_York", Days: []string{"sat"}})
	checkWindow(t, sat, []windowCase{
		{"saturday night", time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC), true, time.Date(2026, 3, 9, 4, 30, 0, 0, time.UTC)},
		{"monday 00:15 EDT", time.Date(2026, 3, 9, 4, 15, 0, 0, time.UTC), true, time.Date(2026, 3, 9, 4, 30, 0, 0, time.UTC)},
		{"monday 00:30 EDT", time.Date(2026, 3, 9, 4, 30, 0, 0, time.UTC), false, time.Date(2026, 3, 15, 3, 30, 0, 0, time.UTC)},
	})
}

// Sampled over a whole year in zones with and without DST: the answer is
// consistent with itself at the change time, and every window starts at
// its local wall-clock time (or, in a spring-forward gap, just after it).
func TestWindowScheduleConsistentOverAYear(t *testing.T) {
	windows := []Window{
		{Start: "02:30", Duration: "1h", Timezone: "America/New_York"},
		{Start: "23:00", Duration: "3h", Timezone: "Europe/Berlin", Days: []string{"sat", "sun"}},
		{Start: "00:00", Duration: "24h", Timezone: "Australia/Sydney", Days: []string{"wed"}},
		{Start: "01:15", Duration: "90m", Timezone: "Australia/Lord_Howe"}, // 30-minute DST shift
		{Start: "12:00", Duration: "5m", Timezone: "UTC"},
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, w := range windows {
		ws := mustSchedule(t, w)
		for now := from; now.Year() == 2026; now = now.Add(97 * time.Minute) {
			open, change := ws.at(now)
			require.True(t, change.After(now), "%+v at %s: change %s", w, now, change)
			require.Less(t, change.Sub(now), 8*24*time.Hour, "%+v at %s", w, now)
			before, _ := ws.at(change.Add(-time.Second))
			require.Equal(t, open, before, "%+v: at %s the state holds until the change %s", w, now, change)
			if !open {
				opened, end := ws.at(change)
				require.True(t, opened, "%+v: opens at %s", w, change)
				local := change.In(ws.loc)
				h, m, _ := local.Clock()
				if h != ws.hour || m != ws.minute {
					// only a start that does not exist moves, forward
					wall := time.Date(local.Year(), local.Month(), local.Day(), ws.hour, ws.minute, 0, 0, time.UTC)
					got := time.Date(local.Year(), local.Month(), local.Day(), h, m, 0, 0, time.UTC)
					require.True(t, got.After(wall) && got.Sub(wall) <= time.Hour, "%+v: a window starts at %s", w, local)
				}
				require.Equal(t, ws.duration, end.Sub(change), "%+v: the window opening at %s lasts its duration", w, change)
				require.True(t, ws.days[local.Weekday()], "%+v: window on %s", w, local.Weekday())
			}
		}
	}
}

func TestWindowScheduleErrors(t *testing.T) {
	for _, w := range []Window{
		{Start: "25:00", Duration: "1h", Timezone: "UTC"},
		{Start: "02:00", Duration: "soon", Timezone: "UTC"},
		{Start: "02:00", Duration: "1h", Timezone: "Mars/Olympus"},
	} {
		_, err := w.schedule()
		assert.Error(t, err, "%+v", w)
	}
}

func TestRatePerMinuteAfter(t *testing.T) {
	cases := []struct {
		name string
		rate Rate
		want map[int]float64 // successes -> cap
	}{
		{"flat", Rate{PerMinute: 6}, map[int]float64{0: 6, 3: 6, 1000: 6}},
		{"factor 1 does not ramp", Rate{PerMinute: 6, RampFactor: 1, RampEvery: 3}, map[int]float64{0: 6, 30: 6}},
		{"doubling every 3", Rate{PerMinute: 6, RampFactor: 2, RampEvery: 3},
			map[int]float64{0: 6, 2: 6, 3: 12, 5: 12, 6: 24, 8: 24, 9: 48, 30: 6 * 1024}},
		{"capped", Rate{PerMinute: 6, RampFactor: 2, RampEvery: 3, MaxPerMinute: 20},
			map[int]float64{0: 6, 3: 12, 6: 20, 1e6: 20}},
		{"cap without ramp", Rate{PerMinute: 6, MaxPerMinute: 6}, map[int]float64{0: 6, 100: 6}},
		{"fractional factor", Rate{PerMinute: 4, RampFactor: 1.5, RampEvery: 10},
			map[int]float64{9: 4, 10: 6, 25: 9, 30: 13.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for successes, want := range tc.want {
				assert.InDelta(t, want, tc.rate.perMinuteAfter(successes), 1e-9, "after %d successes", successes)
			}
		})
	}
}
