package workflows

import (
	"fmt"
	"time"
)

// MaxPhases bounds the phases of a rollout, and so the report's size.
const MaxPhases = 20

// MinPerMinute is the slowest rate.perMinute: one device a day.
const MinPerMinute = 1.0 / (24 * 60)

func (s Spec) validatePolicies() error {
	if err := validatePhases(s.Phases); err != nil {
		return err
	}
	if a := s.Abort; a != nil {
		if a.MaxFailurePercent < 0 || a.MaxFailurePercent > 100 {
			return fieldErr("abort.maxFailurePercent", "must be between 0 and 100, got %g", a.MaxFailurePercent)
		}
		if a.MinDevices < 0 {
			return fieldErr("abort.minDevices", "must not be negative, got %d", a.MinDevices)
		}
	}
	if s.Window != nil {
		if err := s.Window.validate(); err != nil {
			return err
		}
	}
	if s.Rate != nil {
		if err := s.Rate.validate(); err != nil {
			return err
		}
	}
	if s.Rollback != nil {
		if err := s.Rollback.Firmware.validate("rollback.firmware"); err != nil {
			return err
		}
		if s.RollbackOf != "" {
			return fieldErr("rollback", "a rollback (rollbackOf) cannot itself have a rollback")
		}
	}
	if s.StartAt != "" {
		if _, err := time.Parse(time.RFC3339, s.StartAt); err != nil {
			return fieldErr("startAt", "%q is not an RFC 3339 time (like 2026-12-24T02:00:00-05:00)", s.StartAt)
		}
	}
	return nil
}

func validatePhases(phases []Phase) error {
	if len(phases) > MaxPhases {
		return fieldErr("phases", "has %d phases, at most %d are allowed", len(phases), MaxPhases)
	}
	names := map[string]bool{}
	prev := 0.0
	for i, p := range phases {
		field := fmt.Sprintf("phases[%d]", i)
		if p.Name == "" {
			return fieldErr(field+".name", "is required")
		}
		if names[p.Name] {
			return fieldErr(field+".name", "%q is used by an earlier phase", p.Name)
		}
		names[p.Name] = true
		if p.Percent <= prev || p.Percent > 100 {
			return fieldErr(field+".percent", "must be above the previous phase's %g and at most 100, got %g (percents are cumulative)", prev, p.Percent)
		}
		prev = p.Percent
		if err := validatePositiveDuration(field+".soak", p.Soak); err != nil {
			return err
		}
		if err := validatePositiveDuration(field+".approvalTimeout", p.ApprovalTimeout); err != nil {
			return err
		}
		if p.ApprovalTimeout != "" && !p.RequireApproval {
			return fieldErr(field+".approvalTimeout", "needs requireApproval: true")
		}
		if p.MinSuccessPercent < 0 || p.MinSuccessPercent > 100 {
			return fieldErr(field+".minSuccessPercent", "must be between 0 and 100, got %g", p.MinSuccessPercent)
		}
	}
	if len(phases) > 0 && prev != 100 {
		return fieldErr(fmt.Sprintf("phases[%d].percent", len(phases)-1), "must be 100: the last phase covers every selected device, got %g", prev)
	}
	return nil
}

func (w Window) validate() error {
	if _, err := time.Parse("15:04", w.Start); err != nil {
		return fieldErr("window.start", "%q is not a time of day as HH:MM", w.Start)
	}
	if w.Duration == "" {
		return fieldErr("window.duration", "is required")
	}
	d, err := time.ParseDuration(w.Duration)
	if err != nil {
		return fieldErr("window.duration", "%q is not a duration (like 2h or 90m)", w.Duration)
	}
	if d <= 0 || d > 24*time.Hour {
		return fieldErr("window.duration", "must be above 0 and at most 24h, got %s", w.Duration)
	}
	if w.Timezone == "" {
		return fieldErr("window.timezone", "is required (an IANA name like America/New_York, or UTC)")
	}
	if _, err := time.LoadLocation(w.Timezone); err != nil {
		return fieldErr("window.timezone", "%q is not a known IANA time zone", w.Timezone)
	}
	for i, day := range w.Days {
		if _, ok := weekdays[day]; !ok {
			return fieldErr(fmt.Sprintf("window.days[%d]", i), "%q is not one of mon, tue, wed, thu, fri, sat, sun", day)
		}
	}
	return nil
}

func (r Rate) validate() error {
	if r.PerMinute <= 0 {
		return fieldErr("rate.perMinute", "must be positive, got %g", r.PerMinute)
	}
	if r.PerMinute < MinPerMinute {
		// Far slower, time.Minute/perMinute overflows a time.Duration and
		// the rollout would start devices with no spacing at all.
		return fieldErr("rate.perMinute", "must be at least one device a day (%.6f), got %g", MinPerMinute, r.PerMinute)
	}
	if r.RampFactor != 0 && r.RampFactor < 1 {
		return fieldErr("rate.rampFactor", "must be at least 1, got %g", r.RampFactor)
	}
	if r.RampEvery < 0 {
		return fieldErr("rate.rampEvery", "must not be negative, got %d", r.RampEvery)
	}
	if r.RampFactor > 1 && r.RampEvery == 0 {
		return fieldErr("rate.rampEvery", "is required with rampFactor: raise the rate after how many successes?")
	}
	if r.MaxPerMinute != 0 && r.MaxPerMinute < r.PerMinute {
		return fieldErr("rate.maxPerMinute", "%g is below perMinute %g", r.MaxPerMinute, r.PerMinute)
	}
	return nil
}

func (s Spec) validateRollbackOf() error {
	if !rolloutIDPattern.MatchString(s.RollbackOf) {
		return fieldErr("rollbackOf", "%q is not a rollout ID", s.RollbackOf)
	}
	if s.RollbackOf == s.ID {
		return fieldErr("rollbackOf", "a rollout cannot roll itself back")
	}
	if !s.Selector.empty() {
		return fieldErr("selector", "must be empty in a rollback: its devices are those rollout %s updated", s.RollbackOf)
	}
	return nil
}
