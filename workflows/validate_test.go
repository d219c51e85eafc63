package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateAcceptsValidSpecs(t *testing.T) {
	cases := map[string]func(*Spec){
		"minimal":                 func(*Spec) {},
		"https firmware":          func(s *Spec) { s.Firmware.URL = "https://fw.example.com/pos-2.4.0.bin" },
		"upper-case sha":          func(s *Spec) { s.Firmware.SHA256 = strings.ToUpper(testSHA) },
		"pre-release version":     func(s *Spec) { s.Firmware.Version = "2.4.0-rc.1+build.7" },
		"id with dots and colons": func(s *Spec) { s.ID = "fw-2.4.0:canary_1" },
		"id of 128 chars":         func(s *Spec) { s.ID = strings.Repeat("a", 128) },
		"inventory path":          func(s *Spec) { s.Inventory = "/srv/fleet/inventory.json" },
		"relative inventory":      func(s *Spec) { s.Inventory = "testdata/inventory.json" },
		"windows inventory":       func(s *Spec) { s.Inventory = `C:\fleet\inventory.json` },
		"file inventory":          func(s *Spec) { s.Inventory = "file:///srv/fleet/inventory.json" },
		"full selector": func(s *Spec) {
			s.Selector = Selector{IDs: []string{"a"}, Tags: map[string]string{"region": "northeast"},
				Status: []string{"online"}, VersionBelow: "v2.2.0-rc.1"}
		},
		"max concurrency":      func(s *Spec) { s.MaxConcurrent = MaxMaxConcurrent },
		"history budget range": func(s *Spec) { s.MaxHistoryEvents = MinMaxHistoryEvents },
		"history budget max":   func(s *Spec) { s.MaxHistoryEvents = MaxMaxHistoryEvents },
		"full device policy": func(s *Spec) {
			s.Device = DevicePolicy{PushTimeout: "10m", VerifyTimeout: "5m", HeartbeatTimeout: "30s",
				Retry: RetrySpec{InitialInterval: "1s", BackoffCoefficient: 2, MaximumInterval: "1m", MaximumAttempts: 5}}
		},
		"equal retry intervals": func(s *Spec) { s.Device.Retry = RetrySpec{InitialInterval: "5s", MaximumInterval: "5s"} },
		"coefficient of 1":      func(s *Spec) { s.Device.Retry.BackoffCoefficient = 1 },
		"signed firmware":       func(s *Spec) { s.Firmware.Signature = strings.Repeat("A", 86) + "==" },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			s := validSpec("fw-2.4.0")
			edit(&s)
			assert.NoError(t, s.Validate())
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Spec)
		field string
		says  string // part of the problem
	}{
		{"id missing", func(s *Spec) { s.ID = "" }, "id", "is required"},
		{"id with slash", func(s *Spec) { s.ID = "fw/2.4.0" }, "id", `"fw/2.4.0"`},
		{"id starting with dash", func(s *Spec) { s.ID = "-fw" }, "id", "start with a letter or digit"},
		{"id too long", func(s *Spec) { s.ID = strings.Repeat("a", 129) }, "id", "1-128"},
		{"id with space", func(s *Spec) { s.ID = "fw 2" }, "id", ""},

		{"version missing", func(s *Spec) { s.Firmware.Version = "" }, "firmware.version", "is required"},
		{"version with space", func(s *Spec) { s.Firmware.Version = "2.4 0" }, "firmware.version", `"2.4 0"`},
		{"version with slash", func(s *Spec) { s.Firmware.Version = "2/4" }, "firmware.version", ""},

		{"url missing", func(s *Spec) { s.Firmware.URL = "" }, "firmware.url", "is required"},
		{"url ftp", func(s *Spec) { s.Firmware.URL = "ftp://fw.example.com/a.bin" }, "firmware.url", "file://, http:// or https://"},
		{"url relative file", func(s *Spec) { s.Firmware.URL = "file:fw/a.bin" }, "firmware.url", "absolute"},
		{"url without host", func(s *Spec) { s.Firmware.URL = "http:///a.bin" }, "firmware.url", "no host"},
		{"url plain path", func(s *Spec) { s.Firmware.URL = "/srv/fw/a.bin" }, "firmware.url", ""},
		{"url unparseable", func(s *Spec) { s.Firmware.URL = "http://[::1" }, "firmware.url", "not a URL"},

		{"sha missing", func(s *Spec) { s.Firmware.SHA256 = "" }, "firmware.sha256", "is required"},
		{"sha short", func(s *Spec) { s.Firmware.SHA256 = testSHA[:63] }, "firmware.sha256", "63 characters"},
		{"sha not hex", func(s *Spec) { s.Firmware.SHA256 = strings.Repeat("g", 64) }, "firmware.sha256", "64 hex digits"},

		{"size negative", func(s *Spec) { s.Firmware.Size = -1 }, "firmware.size", "negative"},

		{"signature not base64", func(s *Spec) { s.Firmware.Signature = "not base64!" }, "firmware.signature", "is not base64 (standard encoding)"},
		{"signature url-safe base64", func(s *Spec) { s.Firmware.Signature = strings.Repeat("_", 88) }, "firmware.signature", "is not base64"},
		{"signature too short", func(s *Spec) { s.Firmware.Signature = "AAAA" }, "firmware.signature", "must be a 64-byte ed25519 signature, got 3 bytes"},
		{"rollback signature", func(s *Spec) {
			s.Rollback = &Rollback{OnAbort: true, Firmware: Firmware{Version: "2.3.0", URL: "file:///fw/2.3.0.bin", SHA256: testSHA, Signature: "AAAA"}}
		}, "rollback.firmware.signature", "got 3 bytes"},

		{"id reserved", func(s *Spec) { s.ID = "presence" }, "id", "reserved for the devices' presence workflows"},
		{"inventory missing", func(s *Spec) { s.Inventory = "" }, "inventory", "is required"},
		{"inventory ftp", func(s *Spec) { s.Inventory = "ftp://host/inv.json" }, "inventory", "path, a file:// URL or an http(s):// URL"},
		{"inventory without host", func(s *Spec) { s.Inventory = "https:///inv.json" }, "inventory", "no host"},
		{"inventory relative file url", func(s *Spec) { s.Inventory = "file:inv.json" }, "inventory", "absolute"},

		{"selector empty id", func(s *Spec) { s.Selector.IDs = []string{"a", ""} }, "selector.ids[1]", "is empty"},
		{"selector empty tag key", func(s *Spec) { s.Selector.Tags = map[string]string{"": "x"} }, "selector.tags", "empty key"},
		{"selector empty status", func(s *Spec) { s.Selector.Status = []string{""} }, "selector.status[0]", "is empty"},
		{"selector versionBelow", func(s *Spec) { s.Selector.VersionBelow = "latest" }, "selector.versionBelow", "semantic version"},
		{"selector versionBelow 4 parts", func(s *Spec) { s.Selector.VersionBelow = "2.4.0.1" }, "selector.versionBelow", ""},

		{"maxConcurrent negative", func(s *Spec) { s.MaxConcurrent = -1 }, "maxConcurrent", "got -1"},
		{"maxConcurrent too large", func(s *Spec) { s.MaxConcurrent = MaxMaxConcurrent + 1 }, "maxConcurrent", "between 1 and 1000"},

		{"maxHistoryEvents too small", func(s *Spec) { s.MaxHistoryEvents = MinMaxHistoryEvents - 1 }, "maxHistoryEvents", "between"},
		{"maxHistoryEvents too large", func(s *Spec) { s.MaxHistoryEvents = MaxMaxHistoryEvents + 1 }, "maxHistoryEvents", "between"},

		{"pushTimeout no unit", func(s *Spec) { s.Device.PushTimeout = "10" }, "device.pushTimeout", "not a duration"},
		{"pushTimeout zero", func(s *Spec) { s.Device.PushTimeout = "0s" }, "device.pushTimeout", "positive"},
		{"pushTimeout negative", func(s *Spec) { s.Device.PushTimeout = "-1m" }, "device.pushTimeout", "positive"},
		{"verifyTimeout", func(s *Spec) { s.Device.VerifyTimeout = "five minutes" }, "device.verifyTimeout", "not a duration"},
		{"heartbeatTimeout", func(s *Spec) { s.Device.HeartbeatTimeout = "0" }, "device.heartbeatTimeout", "positive"},
		{"retry initialInterval", func(s *Spec) { s.Device.Retry.InitialInterval = "soon" }, "device.retry.initialInterval", "not a duration"},
		{"retry maximumInterval", func(s *Spec) { s.Device.Retry.MaximumInterval = "-5s" }, "device.retry.maximumInterval", "positive"},
		{"retry maximumInterval below initial", func(s *Spec) {
			s.Device.Retry = RetrySpec{InitialInterval: "10s", MaximumInterval: "5s"}
		}, "device.retry.maximumInterval", "shorter than initialInterval"},
		{"retry maximumInterval below default initial", func(s *Spec) { s.Device.Retry.MaximumInterval = "500ms" },
			"device.retry.maximumInterval", "shorter than initialInterval"},
		{"retry backoffCoefficient", func(s *Spec) { s.Device.Retry.BackoffCoefficient = 0.5 }, "device.retry.backoffCoefficient", "at least 1"},
		{"retry maximumAttempts", func(s *Spec) { s.Device.Retry.MaximumAttempts = -1 }, "device.retry.maximumAttempts", "at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec("fw-2.4.0")
			tc.edit(&s)
			err := s.Validate()
			require.Error(t, err)
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "%T is not a *FieldError", err)
			assert.Equal(t, tc.field, fe.Field)
			assert.True(t, strings.HasPrefix(err.Error(), tc.field+": "), "message %q does not start with the field", err)
			assert.Contains(t, fe.Problem, tc.says)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestTimingDefaults(t *testing.T) {
	assert.Equal(t, DeviceTiming{
		PushTimeout:        10 * time.Minute,
		VerifyTimeout:      5 * time.Minute,
		HeartbeatTimeout:   30 * time.Second,
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    5,
	}, DevicePolicy{}.Timing())
}

func TestTimingFromPolicy(t *testing.T) {
	p := DevicePolicy{PushTimeout: "3m", VerifyTimeout: "90s", HeartbeatTimeout: "15s",
		Retry: RetrySpec{InitialInterval: "500ms", BackoffCoefficient: 1.5, MaximumInterval: "2m", MaximumAttempts: 9}}
	assert.Equal(t, DeviceTiming{
		PushTimeout:        3 * time.Minute,
		VerifyTimeout:      90 * time.Second,
		HeartbeatTimeout:   15 * time.Second,
		InitialInterval:    500 * time.Millisecond,
		BackoffCoefficient: 1.5,
		MaximumInterval:    2 * time.Minute,
		MaximumAttempts:    9,
	}, p.Timing())
}

func TestTimingFallsBackOnUnparseable(t *testing.T) {
	p := DevicePolicy{PushTimeout: "soon", Retry: RetrySpec{MaximumInterval: "x", MaximumAttempts: 2}}
	got := p.Timing()
	assert.Equal(t, DefaultPushTimeout, got.PushTimeout)
	assert.Equal(t, DefaultMaximumInterval, got.MaximumInterval)
	assert.Equal(t, 2, got.MaximumAttempts)
}

func TestSpecDefaults(t *testing.T) {
	s := validSpec("fw")
	assert.Equal(t, DefaultMaxConcurrent, s.Concurrency())
	assert.Equal(t, DefaultMaxHistoryEvents, s.HistoryBudget())
	s.MaxConcurrent, s.MaxHistoryEvents = 7, 500
	assert.Equal(t, 7, s.Concurrency())
	assert.Equal(t, 500, s.HistoryBudget())
}

func TestStatusAndCounts(t *testing.T) {
	for _, s := range []Status{StatusCompleted, StatusCompletedWithFailures, StatusCancelled} {
		assert.True(t, s.Ended(), s)
	}
	for _, s := range []Status{StatusRunning, StatusPaused, StatusCancelling} {
		assert.False(t, s.Ended(), s)
	}
	assert.Equal(t, 10, Counts{Succeeded: 1, AlreadyCurrent: 2, Failed: 3, Cancelled: 4}.Done())
}
