package workflows

import (
	"math"
	"time"
)

// Phase is one step of a progressive rollout. Percent is cumulative: the
// share of the selected devices updated once this phase is done.
type Phase struct {
	Name              string  `json:"name"`
	Percent           float64 `json:"percent"`
	Soak              string  `json:"soak,omitempty"`              // wait after the phase, before the next
	MinSuccessPercent float64 `json:"minSuccessPercent,omitempty"` // gate: else the rollout halts
	RequireApproval   bool    `json:"requireApproval,omitempty"`   // wait for `starter approve` before it starts
	ApprovalTimeout   string  `json:"approvalTimeout,omitempty"`   // halt when no approval comes in time
}

// Abort stops the rollout when too many devices fail.
type Abort struct {
	MaxFailurePercent float64 `json:"maxFailurePercent"`
	MinDevices        int     `json:"minDevices,omitempty"` // finished devices before the check applies
}

// DefaultAbortMinDevices: without abort.minDevices, the threshold waits
// for this many finished devices, so one early failure cannot abort.
const DefaultAbortMinDevices = 10

// MinFinished is MinDevices with its default applied.
func (a Abort) MinFinished() int {
	if a.MinDevices == 0 {
		return DefaultAbortMinDevices
	}
	return a.MinDevices
}

// Window is a recurring maintenance window: devices start only inside it.
type Window struct {
	Start    string   `json:"start"`    // HH:MM, local time of Timezone
	Duration string   `json:"duration"` // at most 24h
	Timezone string   `json:"timezone"` // IANA name, e.g. America/New_York
	Days     []string `json:"days,omitempty"`
}

// Rate caps how fast devices start, on top of maxConcurrent. With a ramp
// the cap is multiplied by RampFactor after every RampEvery successes,
// up to MaxPerMinute (like AWS IoT Jobs' exponential rollout).
type Rate struct {
	PerMinute    float64 `json:"perMinute"`
	RampFactor   float64 `json:"rampFactor,omitempty"`
	RampEvery    int     `json:"rampEvery,omitempty"`
	MaxPerMinute float64 `json:"maxPerMinute,omitempty"`
}

// allDevices is the single phase of a rollout that declares none.
var allDevices = []Phase{{Name: "all", Percent: 100}}

// PhasePlan returns the phases with defaults and, for each, the number of
// selected devices it ends at (cumulative). Rounding is up, and a phase
// takes at least one device while devices remain, so a 5% canary of 11
// devices is one device.
func (s Spec) PhasePlan(selected int) ([]Phase, []int) {
	phases := s.Phases
	if len(phases) == 0 {
		phases = allDevices
	}
	ends := make([]int, len(phases))
	prev := 0
	for i, p := range phases {
		end := int(math.Ceil(p.Percent*float64(selected)/100 - 1e-9))
		if end <= prev && prev < selected {
			end = prev + 1
		}
		ends[i] = min(selected, max(end, prev))
		prev = ends[i]
	}
	return phases, ends
}

// weekdays maps the spec's day names.
var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// windowSchedule is a parsed Window.
type windowSchedule struct {
	hour, minute int
	duration     time.Duration
	loc          *time.Location
	days         [7]bool
}

// schedule parses the window; Validate has checked it.
func (w Window) schedule() (windowSchedule, error) {
	var ws windowSchedule
	start, err := time.Parse("15:04", w.Start)
	if err != nil {
		return ws, err
	}
	if ws.duration, err = time.ParseDuration(w.Duration); err != nil {
		return ws, err
	}
	if ws.loc, err = time.LoadLocation(w.Timezone); err != nil {
		return ws, err
	}
	ws.hour, ws.minute = start.Hour(), start.Minute()
	for _, d := range w.Days {
		ws.days[weekdays[d]] = true
	}
	if len(w.Days) == 0 {
		ws.days = [7]bool{true, true, true, true, true, true, true}
	}
	return ws, nil
}

// at tells whether the window is open at now and when that changes: the
// end of the open window, or the start of the next one. Start times are
// local wall-clock times, so they follow daylight-saving changes; a start
// that does not exist on a spring-forward day moves forward with the
// clock. A window belongs to the day it starts on.
func (ws windowSchedule) at(now time.Time) (open bool, change time.Time) {
	local := now.In(ws.loc)
	y, m, d := local.Date()
	// Two days back: a 24h window that spans a spring-forward night ends
	// on the second day after the one it started on.
	for offset := -2; offset <= 8; offset++ {
		start := ws.startOn(y, m, d+offset)
		if !ws.days[start.Weekday()] {
			continue
		}
		end := start.Add(ws.duration)
		if !now.Before(start) && now.Before(end) {
			return true, end
		}
		if start.After(now) {
			return false, start
		}
	}
	return false, time.Time{} // unreachable: Validate requires a day
}

// startOn is the window's start on a day. A wall-clock time in a
// spring-forward gap does not exist, and time.Date may resolve it with the
// offset from after the gap, which moves it back (02:30 becomes 01:30 EST
// in New York); read it with the offset from before the gap instead, which
// moves it forward with the clock (03:30 EDT).
func (ws windowSchedule) startOn(y int, m time.Month, d int) time.Time {
	start := time.Date(y, m, d, ws.hour, ws.minute, 0, 0, ws.loc)
	if h, mi, _ := start.Clock(); h == ws.hour && mi == ws.minute {
		return start
	}
	zoneStart, zoneEnd := start.ZoneBounds()
	gap := zoneStart // start is just after the gap
	if !zoneEnd.IsZero() && zoneEnd.Sub(start) < 24*time.Hour {
		gap = zoneEnd // start is just before the gap
	}
	_, offsetBefore := gap.Add(-time.Second).Zone()
	wall := time.Date(y, m, d, ws.hour, ws.minute, 0, 0, time.UTC)
	return wall.Add(-time.Duration(offsetBefore) * time.Second).In(ws.loc)
}

// perMinuteAfter is the rate cap once the given number of devices have
// succeeded.
func (r Rate) perMinuteAfter(successes int) float64 {
	rate := r.PerMinute
	if r.RampFactor > 1 && r.RampEvery > 0 {
		rate *= math.Pow(r.RampFactor, float64(successes/r.RampEvery))
	}
	if r.MaxPerMinute > 0 {
		rate = min(rate, r.MaxPerMinute)
	}
	return rate
}
