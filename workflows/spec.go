package workflows

import (
	"time"
)

// Spec is the FirmwareRollout input: what to push, to which devices, how.
// Durations are Go duration strings so that a malformed value reaches
// Validate (which names the field) instead of failing payload decoding.
type Spec struct {
	ID            string       `json:"id"`
	Firmware      Firmware     `json:"firmware"`
	Inventory     string       `json:"inventory"`
	Selector      Selector     `json:"selector,omitzero"`
	MaxConcurrent int          `json:"maxConcurrent,omitempty"`
	Device        DevicePolicy `json:"device,omitzero"`
	// MaxHistoryEvents is the event budget of one workflow run: past it the
	// rollout lets running devices finish and continues as new.
	MaxHistoryEvents int `json:"maxHistoryEvents,omitempty"`

	// Rollout policies (see policy.go).
	Phases  []Phase `json:"phases,omitempty"`
	Abort   *Abort  `json:"abort,omitempty"`
	Window  *Window `json:"window,omitempty"`
	Rate    *Rate   `json:"rate,omitempty"`
	StartAt string  `json:"startAt,omitempty"` // RFC 3339: nothing starts before

	// Rollback brings the devices this rollout updated back to a previous
	// image when the rollout aborts.
	Rollback *Rollback `json:"rollback,omitempty"`
	// RollbackOf makes this rollout a rollback: its devices are those the
	// named rollout updated, found from their DeviceUpdate results, and
	// Inventory and Selector are not used.
	RollbackOf string `json:"rollbackOf,omitempty"`
	// RollbackExpect is how many device updates of RollbackOf completed
	// (updated or already current), so the rollback waits until Temporal's
	// visibility shows them all.
	RollbackExpect int `json:"rollbackExpect,omitempty"`
}

// Rollback is what to do with the devices a rollout updated when it
// aborts (on the abort threshold, or a failed gate): push Firmware, the
// previous image, to each, as a phase of its own.
type Rollback struct {
	OnAbort  bool     `json:"onAbort"`
	Firmware Firmware `json:"firmware"`
}

// RollbackID is the rollout ID of the rollback of rollout id.
func RollbackID(id string) string { return id + "-rollback" }

// Firmware identifies the image. URL is file:// or http(s):// and must be
// readable by the workers; SHA256 is the hex digest the image must have.
// Signature, when set, is the base64 ed25519 signature of the image's
// version and digest (package activities/signing); it is public data, the
// key that made it stays with whoever signed.
type Firmware struct {
	Version   string `json:"version"`
	URL       string `json:"url"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Selector narrows the inventory to the devices of this rollout. Empty
// fields match everything; set fields must all match.
type Selector struct {
	IDs            []string          `json:"ids,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`    // metadata key = value, all of them
	HasTags        []string          `json:"hasTags,omitempty"` // metadata keys present, whatever the value
	Status         []string          `json:"status,omitempty"`
	VersionBelow   string            `json:"versionBelow,omitempty"`
	VersionAtLeast string            `json:"versionAtLeast,omitempty"`
	Location       string            `json:"location,omitempty"` // glob, case-insensitive: "*, NY"
}

// DevicePolicy bounds the work on one device.
type DevicePolicy struct {
	PushTimeout      string    `json:"pushTimeout,omitempty"`
	WaitOnline       string    `json:"waitOnline,omitempty"` // how long an unreachable device may take to come back
	VerifyTimeout    string    `json:"verifyTimeout,omitempty"`
	HeartbeatTimeout string    `json:"heartbeatTimeout,omitempty"`
	Retry            RetrySpec `json:"retry,omitzero"`
}

// RetrySpec becomes the Temporal retry policy of the device activities.
type RetrySpec struct {
	InitialInterval    string  `json:"initialInterval,omitempty"`
	BackoffCoefficient float64 `json:"backoffCoefficient,omitempty"`
	MaximumInterval    string  `json:"maximumInterval,omitempty"`
	MaximumAttempts    int     `json:"maximumAttempts,omitempty"`
}

// Defaults applied to fields the spec leaves empty.
const (
	DefaultMaxConcurrent = 50
	MaxMaxConcurrent     = 1000

	DefaultMaxHistoryEvents = 7000
	MinMaxHistoryEvents     = 300
	// Temporal warns at 10,240 events; the budget stays below that.
	MaxMaxHistoryEvents = 9000

	DefaultPushTimeout        = 10 * time.Minute
	DefaultVerifyTimeout      = 5 * time.Minute
	DefaultHeartbeatTimeout   = 30 * time.Second
	DefaultInitialInterval    = time.Second
	DefaultBackoffCoefficient = 2.0
	DefaultMaximumInterval    = time.Minute
	DefaultMaximumAttempts    = 5
)

// DeviceTiming is DevicePolicy with defaults applied and durations parsed.
type DeviceTiming struct {
	PushTimeout        time.Duration
	WaitOnline         time.Duration // 0: an unreachable device fails at once
	VerifyTimeout      time.Duration
	HeartbeatTimeout   time.Duration
	InitialInterval    time.Duration
	BackoffCoefficient float64
	MaximumInterval    time.Duration
	MaximumAttempts    int
}

// Concurrency is MaxConcurrent with its default applied.
func (s Spec) Concurrency() int {
	if s.MaxConcurrent == 0 {
		return DefaultMaxConcurrent
	}
	return s.MaxConcurrent
}

// HistoryBudget is MaxHistoryEvents with its default applied.
func (s Spec) HistoryBudget() int {
	if s.MaxHistoryEvents == 0 {
		return DefaultMaxHistoryEvents
	}
	return s.MaxHistoryEvents
}

// Timing parses the device policy. Call Validate first: a value that does
// not parse here falls back to its default.
func (p DevicePolicy) Timing() DeviceTiming {
	t := DeviceTiming{
		PushTimeout:        durationOr(p.PushTimeout, DefaultPushTimeout),
		WaitOnline:         durationOr(p.WaitOnline, 0),
		VerifyTimeout:      durationOr(p.VerifyTimeout, DefaultVerifyTimeout),
		HeartbeatTimeout:   durationOr(p.HeartbeatTimeout, DefaultHeartbeatTimeout),
		InitialInterval:    durationOr(p.Retry.InitialInterval, DefaultInitialInterval),
		BackoffCoefficient: p.Retry.BackoffCoefficient,
		MaximumInterval:    durationOr(p.Retry.MaximumInterval, DefaultMaximumInterval),
		MaximumAttempts:    p.Retry.MaximumAttempts,
	}
	if t.BackoffCoefficient == 0 {
		t.BackoffCoefficient = DefaultBackoffCoefficient
	}
	if p.Retry.MaximumInterval == "" {
		t.MaximumInterval = max(t.MaximumInterval, t.InitialInterval)
	}
	if t.MaximumAttempts == 0 {
		t.MaximumAttempts = DefaultMaximumAttempts
	}
	return t
}

func durationOr(s string, fallback time.Duration) time.Duration {
	if s == "" {
		return fallback
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fallback
	}
	return d
}
