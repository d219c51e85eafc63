package workflows

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzProductSpec is the example spec of the product contract (PRODUCT.md).
const fuzzProductSpec = `{
  "id": "fw-2.4.0",
  "firmware": {"version": "2.4.0", "url": "file:///srv/fw/pos-2.4.0.bin",
               "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size": 10485760},
  "inventory": "http://127.0.0.1:9000/_fleet/inventory",
  "selector": {"ids": [], "tags": {"region": "northeast"},
               "status": ["online"], "versionBelow": "2.2.0"},
  "maxConcurrent": 50,
  "phases": [{"name": "canary", "percent": 10, "soak": "30m", "minSuccessPercent": 95},
             {"name": "rest", "percent": 100, "minSuccessPercent": 90}],
  "abort": {"maxFailurePercent": 10, "minDevices": 20},
  "window": {"start": "02:00", "duration": "2h", "timezone": "America/New_York",
             "days": ["mon", "tue", "wed", "thu", "fri"]},
  "device": {"pushTimeout": "10m", "verifyTimeout": "5m",
             "retry": {"initialInterval": "1s", "backoffCoefficient": 2,
                       "maximumInterval": "1m", "maximumAttempts": 5}}
}`

// fuzzFieldPath is how FieldError names a field: JSON names joined by dots,
// with an optional [index] after a list.
var fuzzFieldPath = regexp.MustCompile(`^[a-z][A-Za-z0-9]*(\[[0-9]+\])?(\.[a-z][A-Za-z0-9]*(\[[0-9]+\])?)*$`)

// FuzzSpec decodes arbitrary JSON into a Spec as the workflow does and
// validates it. Validate never panics and its errors are one line that
// starts with the name of a real spec field. A spec that passes has
// defaults and derived values (timing, concurrency, history budget, phase
// plan, window schedule, rate) that hold their invariants, and survives
// the JSON round trip through a workflow payload unchanged in verdict.
func FuzzSpec(f *testing.F) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	seeds := []string{
		fuzzProductSpec,
		`{"id":"fw","firmware":{"version":"1","url":"https://h/fw.bin","sha256":"` + sha + `"},"inventory":"inv.json"}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"inv.json",
		  "phases":[{"name":"a","percent":0.001},{"name":"b","percent":50,"requireApproval":true,"approvalTimeout":"1h"},{"name":"c","percent":100}],
		  "rate":{"perMinute":0.5,"rampFactor":2,"rampEvery":3,"maxPerMinute":60},"startAt":"2026-12-24T02:00:00-05:00",
		  "window":{"start":"02:30","duration":"24h","timezone":"Australia/Lord_Howe","days":["sun"]},"maxHistoryEvents":300}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"inv.json",
		  "device":{"retry":{"initialInterval":"2m"}},"selector":{"location":"*, NY","versionAtLeast":"1.0.0-rc.1","versionBelow":"v2"}}`,
		// invalid ones
		`{}`,
		`{"id":"a/b"}`,
		`{"id":"fw","firmware":{"version":"1","url":"ftp://h/fw","sha256":"` + sha + `"},"inventory":"x"}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"abc"},"inventory":"x"}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x","phases":[{"name":"a","percent":50}]}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x","window":{"start":"24:00","duration":"1h","timezone":"UTC"}}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x","device":{"retry":{"maximumInterval":"1s","initialInterval":"1m"}}}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x","selector":{"location":"[","ids":[""]}}`,
		`{"id":"fw","firmware":{"version":"1","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x","rate":{"perMinute":1e-300}}`,
		`{"id":"fw","firmware":{"version":"1\n2","url":"file:///fw","sha256":"` + sha + `"},"inventory":"x"}`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), int64(1_790_000_000+i*86_400*37), uint32(i*7))
	}
	f.Fuzz(func(t *testing.T, data []byte, nowUnix int64, devices uint32) {
		var s Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		err := s.Validate()
		fuzzCheckFieldError(t, err)

		// The starter validates what it sends; the workflow validates what
		// it decodes from the payload. They must agree.
		payload, mErr := json.Marshal(s)
		if mErr != nil {
			t.Fatalf("a decoded spec does not encode: %v", mErr)
		}
		var again Spec
		if uErr := json.Unmarshal(payload, &again); uErr != nil {
			t.Fatalf("a spec payload does not decode: %v\n%s", uErr, payload)
		}
		if e1, e2 := fuzzErrString(err), fuzzErrString(again.Validate()); e1 != e2 {
			t.Fatalf("verdict changed through the payload: %q, then %q\n%s", e1, e2, payload)
		}
		if err != nil {
			return
		}

		fuzzCheckDefaults(t, s)
		for _, n := range []int{0, 1, 2, 3, 7, 10, 11, 99, 100, 1000, 20000, int(devices % 1_000_000)} {
			fuzzCheckPhasePlan(t, s, n)
		}
		now := fuzzTimeIn1900To2400(nowUnix)
		if s.Window != nil {
			fuzzCheckWindow(t, *s.Window, now)
		}
		if s.Rate != nil {
			fuzzCheckRate(t, *s.Rate, int(devices%100_000))
		}
	})
}

func fuzzErrString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fuzzCheckFieldError: nil, or a *FieldError whose text is one line of
// valid UTF-8, "field: problem", naming a field that exists in the spec.
func fuzzCheckFieldError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("Validate returned %T, want *FieldError: %v", err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
		t.Fatalf("Validate error is not one line of UTF-8: %q", msg)
	}
	if !strings.HasPrefix(msg, fe.Field+": ") || strings.TrimSpace(fe.Problem) == "" {
		t.Fatalf("Validate error %q does not read \"field: problem\"", msg)
	}
	if !fuzzFieldPath.MatchString(fe.Field) || !fuzzSpecHasField(fe.Field) {
		t.Fatalf("Validate error names %q, which is not a spec field: %q", fe.Field, msg)
	}
}

var fuzzIndexSuffix = regexp.MustCompile(`\[[0-9]+\]$`)

// fuzzSpecHasField resolves a dotted JSON path ("device.retry.initialInterval",
// "phases[2].percent") against Spec's JSON field names.
func fuzzSpecHasField(path string) bool {
	typ := reflect.TypeFor[Spec]()
	for part := range strings.SplitSeq(path, ".") {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return false
		}
		indexed := fuzzIndexSuffix.MatchString(part)
		name := fuzzIndexSuffix.ReplaceAllString(part, "")
		found := false
		for i := range typ.NumField() {
			field := typ.Field(i)
			if strings.Split(field.Tag.Get("json"), ",")[0] == name {
				typ, found = field.Type, true
				break
			}
		}
		if !found {
			return false
		}
		if indexed {
			if typ.Kind() != reflect.Slice {
				return false
			}
			typ = typ.Elem()
		}
	}
	return true
}

// fuzzCheckDefaults: the values a valid spec hands to Temporal are in range.
func fuzzCheckDefaults(t *testing.T, s Spec) {
	t.Helper()
	if c := s.Concurrency(); c < 1 || c > MaxMaxConcurrent {
		t.Fatalf("Concurrency() = %d, want 1..%d", c, MaxMaxConcurrent)
	}
	if b := s.HistoryBudget(); b < MinMaxHistoryEvents || b > MaxMaxHistoryEvents {
		t.Fatalf("HistoryBudget() = %d, want %d..%d", b, MinMaxHistoryEvents, MaxMaxHistoryEvents)
	}
	tm := s.Device.Timing()
	// Every duration is positive, except those documented as 0 = off.
	v := reflect.ValueOf(tm)
	for i := range v.NumField() {
		d, ok := v.Field(i).Interface().(time.Duration)
		if !ok {
			continue
		}
		name := v.Type().Field(i).Name
		if d < 0 || (d == 0 && name != "WaitOnline") {
			t.Fatalf("Timing().%s = %s, want positive", name, d)
		}
	}
	if tm.BackoffCoefficient < 1 || math.IsInf(tm.BackoffCoefficient, 0) {
		t.Fatalf("Timing().BackoffCoefficient = %g, want finite and at least 1", tm.BackoffCoefficient)
	}
	if tm.MaximumAttempts < 1 || tm.MaximumAttempts > math.MaxInt32 {
		t.Fatalf("Timing().MaximumAttempts = %d, want 1..MaxInt32 (it becomes an int32)", tm.MaximumAttempts)
	}
	if tm.MaximumInterval < tm.InitialInterval {
		t.Fatalf("Timing(): maximumInterval %s below initialInterval %s", tm.MaximumInterval, tm.InitialInterval)
	}
	if s.Abort != nil && s.Abort.MinFinished() < 1 {
		t.Fatalf("Abort.MinFinished() = %d, want at least 1", s.Abort.MinFinished())
	}
}

// fuzzCheckPhasePlan: cumulative ends, non-decreasing, the last at n, and
// every phase takes a device while any remain.
func fuzzCheckPhasePlan(t *testing.T, s Spec, n int) {
	t.Helper()
	phases, ends := s.PhasePlan(n)
	if len(phases) == 0 || len(phases) != len(ends) {
		t.Fatalf("PhasePlan(%d): %d phases, %d ends", n, len(phases), len(ends))
	}
	prev := 0
	for i, end := range ends {
		if end < prev || end > n {
			t.Fatalf("PhasePlan(%d): ends %v: phase %d ends at %d after %d", n, ends, i, end, prev)
		}
		if end == prev && prev < n {
			t.Fatalf("PhasePlan(%d): ends %v: phase %d (%s, %g%%) is empty while devices remain", n, ends, i, phases[i].Name, phases[i].Percent)
		}
		prev = end
	}
	if ends[len(ends)-1] != n {
		t.Fatalf("PhasePlan(%d): ends %v, the last phase must end at %d", n, ends, n)
	}
}

// fuzzTime maps any int64 into 1900..2400, the range time zone rules are
// meaningful for.
func fuzzTimeIn1900To2400(unix int64) time.Time {
	const lo, span = -2_208_988_800, 15_778_800_000 // 1900-01-01, 500 years
	sec := lo + int64(uint64(unix)%span)
	return time.Unix(sec, int64(uint64(unix)%1_000_000_000)).UTC()
}

// fuzzCheckWindow: the schedule of a valid window parses, its next change is
// after now and within a week and a day, the state holds until the change,
// and a closed window opens at the change for its duration on an allowed
// day (the invariants of TestWindowScheduleConsistentOverAYear, at any
// time and for any valid window).
func fuzzCheckWindow(t *testing.T, w Window, now time.Time) {
	t.Helper()
	ws, err := w.schedule()
	if err != nil {
		t.Fatalf("a valid window %+v does not parse: %v", w, err)
	}
	open, change := ws.at(now)
	if !change.After(now) {
		t.Fatalf("window %+v at %s: open=%v, next change %s is not after now", w, now, open, change)
	}
	if change.Sub(now) > 8*24*time.Hour {
		t.Fatalf("window %+v at %s: next change %s is more than 8 days away", w, now, change)
	}
	if before, _ := ws.at(change.Add(-time.Nanosecond)); before != open {
		t.Fatalf("window %+v at %s: open=%v, but just before the change %s open=%v", w, now, open, change, before)
	}
	if open {
		if change.Sub(now) > ws.duration {
			t.Fatalf("window %+v at %s: open until %s, longer than its duration", w, now, change)
		}
		return
	}
	opened, end := ws.at(change)
	if !opened {
		t.Fatalf("window %+v at %s: closed until %s, but not open then", w, now, change)
	}
	if end.Sub(change) != ws.duration {
		t.Fatalf("window %+v opening at %s closes at %s, not after %s", w, change, end, ws.duration)
	}
}

// fuzzCheckRate: the cap is positive at any number of successes, never above
// maxPerMinute, and the spacing the rollout derives from it
// (time.Minute / cap) fits in a time.Duration.
func fuzzCheckRate(t *testing.T, r Rate, successes int) {
	t.Helper()
	for _, k := range []int{0, 1, successes} {
		perMinute := r.perMinuteAfter(k)
		if math.IsNaN(perMinute) || perMinute <= 0 {
			t.Fatalf("rate %+v after %d successes: cap %g, want positive", r, k, perMinute)
		}
		if r.MaxPerMinute > 0 && perMinute > r.MaxPerMinute {
			t.Fatalf("rate %+v after %d successes: cap %g above maxPerMinute", r, k, perMinute)
		}
		if interval := float64(time.Minute) / perMinute; interval >= math.MaxInt64 {
			t.Fatalf("rate %+v after %d successes: a start every %g ns overflows time.Duration", r, k, interval)
		}
	}
}
