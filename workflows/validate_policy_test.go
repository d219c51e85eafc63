package workflows

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The product contract's example spec, policies included, is valid.
func TestValidateAcceptsTheContractExample(t *testing.T) {
	doc := `{
	  "id": "fw-2.4.0",
	  "firmware": {"version": "2.4.0", "url": "file:///srv/fw/pos-2.4.0.bin",
	               "sha256": "` + testSHA + `", "size": 10485760},
	  "inventory": "http://127.0.0.1:9000/_fleet/inventory",
	  "selector": {"ids": [], "tags": {"region": "northeast"},
	               "status": ["online"], "versionBelow": "2.2.0"},
	  "maxConcurrent": 50,
	  "phases": [{"name": "canary", "percent": 10, "soak": "30m", "minSuccessPercent": 95},
	             {"name": "rest", "percent": 100, "minSuccessPercent": 90}],
	  "abort": {"maxFailurePercent": 10, "minDevices": 20},
	  "window": {"start": "02:00", "duration": "2h", "timezone": "America/New_York",
	             "days": ["mon", "tue", "wed", "thu", "fri"]},
	  "rate": {"perMinute": 6, "rampFactor": 2, "rampEvery": 3, "maxPerMinute": 60},
	  "startAt": "2026-12-24T02:00:00-05:00",
	  "device": {"pushTimeout": "10m", "verifyTimeout": "5m",
	             "retry": {"initialInterval": "1s", "backoffCoefficient": 2,
	                       "maximumInterval": "1m", "maximumAttempts": 5}}
	}`
	var spec Spec
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&spec))
	require.NoError(t, spec.Validate())
	assert.Len(t, spec.Phases, 2)
	assert.Equal(t, 95.0, spec.Phases[0].MinSuccessPercent)
	assert.Equal(t, &Abort{MaxFailurePercent: 10, MinDevices: 20}, spec.Abort)
	assert.Equal(t, "America/New_York", spec.Window.Timezone)
	assert.Equal(t, 3, spec.Rate.RampEvery)
}

func TestValidateAcceptsPolicies(t *testing.T) {
	cases := map[string]func(*Spec){
		"one phase of 100":    func(s *Spec) { s.Phases = []Phase{{Name: "all", Percent: 100}} },
		"fractional percents": func(s *Spec) { s.Phases = phasesOf(0.5, 2.5, 100) },
		"max phases":          func(s *Spec) { s.Phases = manyPhases(MaxPhases) },
		"approval with timeout": func(s *Spec) {
			s.Phases = []Phase{{Name: "a", Percent: 100, RequireApproval: true, ApprovalTimeout: "24h"}}
		},
		"gate of 100":  func(s *Spec) { s.Phases = []Phase{{Name: "a", Percent: 100, MinSuccessPercent: 100}} },
		"abort bounds": func(s *Spec) { s.Abort = &Abort{MaxFailurePercent: 0} },
		"abort 100":    func(s *Spec) { s.Abort = &Abort{MaxFailurePercent: 100, MinDevices: 1} },
		"window 24h":   func(s *Spec) { s.Window = &Window{Start: "00:00", Duration: "24h", Timezone: "UTC"} },
		"window 23:59": func(s *Spec) { s.Window = &Window{Start: "23:59", Duration: "1m", Timezone: "Asia/Kolkata"} },
		"window every day named": func(s *Spec) {
			s.Window = &Window{Start: "02:00", Duration: "90m", Timezone: "Europe/Berlin", Days: []string{"sun", "sat"}}
		},
		"rate only":                  func(s *Spec) { s.Rate = &Rate{PerMinute: 0.5} },
		"rate factor 1 without step": func(s *Spec) { s.Rate = &Rate{PerMinute: 5, RampFactor: 1} },
		"rate max equal":             func(s *Spec) { s.Rate = &Rate{PerMinute: 5, MaxPerMinute: 5} },
		"startAt utc":                func(s *Spec) { s.StartAt = "2026-12-24T07:00:00Z" },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			s := validSpec("fw-policies")
			edit(&s)
			assert.NoError(t, s.Validate())
		})
	}
}

func manyPhases(n int) []Phase {
	percents := make([]float64, n)
	for i := range percents {
		percents[i] = float64(100*(i+1)) / float64(n)
	}
	percents[n-1] = 100
	return phasesOf(percents...)
}

// Every policy error is refused with a message naming the field.
func TestValidatePolicyNamesTheField(t *testing.T) {
	two := func(a, b Phase) func(*Spec) {
		return func(s *Spec) { s.Phases = []Phase{a, b} }
	}
	window := func(edit func(*Window)) func(*Spec) {
		return func(s *Spec) {
			w := Window{Start: "02:00", Duration: "2h", Timezone: "America/New_York"}
			edit(&w)
			s.Window = &w
		}
	}
	rate := func(r Rate) func(*Spec) { return func(s *Spec) { s.Rate = &r } }
	cases := []struct {
		name  string
		edit  func(*Spec)
		field string
		says  string
	}{
		{"percent out of order", two(Phase{Name: "a", Percent: 50}, Phase{Name: "b", Percent: 40}), "phases[1].percent", "above the previous phase's 50"},
		{"percent repeated", two(Phase{Name: "a", Percent: 50}, Phase{Name: "b", Percent: 50}), "phases[1].percent", "got 50"},
		{"percent above 100", two(Phase{Name: "a", Percent: 50}, Phase{Name: "b", Percent: 120}), "phases[1].percent", "at most 100, got 120"},
		{"first percent above 100", func(s *Spec) { s.Phases = []Phase{{Name: "a", Percent: 101}} }, "phases[0].percent", "at most 100"},
		{"percent zero", two(Phase{Name: "a", Percent: 0}, Phase{Name: "b", Percent: 100}), "phases[0].percent", "got 0"},
		{"percent negative", two(Phase{Name: "a", Percent: -5}, Phase{Name: "b", Percent: 100}), "phases[0].percent", "got -5"},
		{"last not 100", two(Phase{Name: "a", Percent: 10}, Phase{Name: "b", Percent: 90}), "phases[1].percent", "must be 100"},
		{"duplicate names", two(Phase{Name: "a", Percent: 10}, Phase{Name: "a", Percent: 100}), "phases[1].name", `"a" is used by an earlier phase`},
		{"empty name", two(Phase{Percent: 10}, Phase{Name: "b", Percent: 100}), "phases[0].name", "is required"},
		{"bad soak", two(Phase{Name: "a", Percent: 10, Soak: "two days"}, Phase{Name: "b", Percent: 100}), "phases[0].soak", `"two days" is not a duration`},
		{"negative soak", two(Phase{Name: "a", Percent: 10, Soak: "-1h"}, Phase{Name: "b", Percent: 100}), "phases[0].soak", "must be positive"},
		{"bad approval timeout", two(Phase{Name: "a", Percent: 10}, Phase{Name: "b", Percent: 100, RequireApproval: true, ApprovalTimeout: "1 day"}), "phases[1].approvalTimeout", "not a duration"},
		{"approvalTimeout without requireApproval", two(Phase{Name: "a", Percent: 10, ApprovalTimeout: "1h"}, Phase{Name: "b", Percent: 100}), "phases[0].approvalTimeout", "needs requireApproval"},
		{"gate above 100", two(Phase{Name: "a", Percent: 10, MinSuccessPercent: 101}, Phase{Name: "b", Percent: 100}), "phases[0].minSuccessPercent", "between 0 and 100"},
		{"gate negative", two(Phase{Name: "a", Percent: 10}, Phase{Name: "b", Percent: 100, MinSuccessPercent: -1}), "phases[1].minSuccessPercent", "got -1"},
		{"too many phases", func(s *Spec) { s.Phases = manyPhases(MaxPhases + 1) }, "phases", "at most 20"},

		{"abort above 100", func(s *Spec) { s.Abort = &Abort{MaxFailurePercent: 101} }, "abort.maxFailurePercent", "between 0 and 100, got 101"},
		{"abort negative", func(s *Spec) { s.Abort = &Abort{MaxFailurePercent: -1} }, "abort.maxFailurePercent", "got -1"},
		{"abort minDevices negative", func(s *Spec) { s.Abort = &Abort{MaxFailurePercent: 10, MinDevices: -1} }, "abort.minDevices", "negative"},

		{"window start 25:00", window(func(w *Window) { w.Start = "25:00" }), "window.start", `"25:00" is not a time of day`},
		{"window start missing", window(func(w *Window) { w.Start = "" }), "window.start", "HH:MM"},
		{"window start with seconds", window(func(w *Window) { w.Start = "02:00:00" }), "window.start", "HH:MM"},
		{"window duration 25h", window(func(w *Window) { w.Duration = "25h" }), "window.duration", "at most 24h, got 25h"},
		{"window duration 0s", window(func(w *Window) { w.Duration = "0s" }), "window.duration", "above 0"},
		{"window duration negative", window(func(w *Window) { w.Duration = "-1h" }), "window.duration", "above 0"},
		{"window duration bad", window(func(w *Window) { w.Duration = "bad" }), "window.duration", `"bad" is not a duration`},
		{"window duration missing", window(func(w *Window) { w.Duration = "" }), "window.duration", "is required"},
		{"window timezone unknown", window(func(w *Window) { w.Timezone = "Mars/Olympus" }), "window.timezone", `"Mars/Olympus" is not a known IANA time zone`},
		{"window timezone missing", window(func(w *Window) { w.Timezone = "" }), "window.timezone", "is required"},
		{"window day funday", window(func(w *Window) { w.Days = []string{"mon", "funday"} }), "window.days[1]", `"funday" is not one of`},
		{"window day capitalised", window(func(w *Window) { w.Days = []string{"Mon"} }), "window.days[0]", `"Mon"`},

		{"rate perMinute -1", rate(Rate{PerMinute: -1}), "rate.perMinute", "must be positive, got -1"},
		{"rate perMinute 0", rate(Rate{PerMinute: 0}), "rate.perMinute", "must be positive, got 0"},
		{"rate rampFactor 0.5", rate(Rate{PerMinute: 6, RampFactor: 0.5, RampEvery: 3}), "rate.rampFactor", "at least 1, got 0.5"},
		{"rate rampFactor without rampEvery", rate(Rate{PerMinute: 6, RampFactor: 2}), "rate.rampEvery", "is required with rampFactor"},
		{"rate rampEvery negative", rate(Rate{PerMinute: 6, RampFactor: 2, RampEvery: -1}), "rate.rampEvery", "negative"},
		{"rate maxPerMinute below perMinute", rate(Rate{PerMinute: 6, MaxPerMinute: 3}), "rate.maxPerMinute", "3 is below perMinute 6"},

		{"startAt tomorrow", func(s *Spec) { s.StartAt = "tomorrow" }, "startAt", `"tomorrow" is not an RFC 3339 time`},
		{"startAt without zone", func(s *Spec) { s.StartAt = "2026-12-24T02:00:00" }, "startAt", "RFC 3339"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec("fw-policies")
			tc.edit(&s)
			err := s.Validate()
			require.Error(t, err)
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "not a FieldError: %v", err)
			assert.Equal(t, tc.field, fe.Field, "error: %v", err)
			assert.Contains(t, fe.Problem, tc.says)
			assert.True(t, strings.HasPrefix(err.Error(), tc.field+": "), err.Error())
		})
	}
}

// The workflow refuses an invalid policy before reading anything.
func TestRolloutRefusesInvalidPolicy(t *testing.T) {
	f := newFleet("a")
	spec := validSpec("fw-bad-policy")
	spec.Window = &Window{Start: "02:00", Duration: "2h", Timezone: "Mars/Olympus"}
	env := newRolloutEnv(t, f, spec)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	require.True(t, env.IsWorkflowCompleted())
	appErr := requireAppError(t, env.GetWorkflowError(), ErrInvalidSpec)
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), `invalid rollout spec: window.timezone: "Mars/Olympus"`)
	assert.Empty(t, f.listCalls)
}
