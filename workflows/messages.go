package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Target is a selected device as the rollout needs it: no more than the
// ID, the address and its place in the rollout order.
type Target struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Key     string `json:"key"`
}

// OrderKey places a device in a rollout's order. Hashing the rollout and
// device IDs spreads any prefix of the order (a canary) over the whole
// fleet instead of taking the first devices of the file, and is the same
// on every worker and every run.
func OrderKey(rolloutID, deviceID string) string {
	sum := sha256.Sum256([]byte(rolloutID + "\x00" + deviceID))
	return hex.EncodeToString(sum[:8]) + "/" + deviceID
}

// ListTargetsRequest asks for the next page of selected devices, in
// OrderKey order, strictly after the cursor.
type ListTargetsRequest struct {
	RolloutID string   `json:"rolloutId"`
	Inventory string   `json:"inventory"`
	Selector  Selector `json:"selector,omitzero"`
	After     string   `json:"after,omitempty"`
	Limit     int      `json:"limit"`
	// With RollbackOf, the devices are those that rollout updated, and
	// Expect is how many device updates it completed (visibility must
	// show them all before the first page).
	RollbackOf string `json:"rollbackOf,omitempty"`
	Expect     int    `json:"expect,omitempty"`
}

// TargetPage is one page of selected devices.
type TargetPage struct {
	Targets  []Target `json:"targets"`
	Selected int      `json:"selected"` // devices the selector matches now
	More     bool     `json:"more"`
}

// DeviceRequest is the DeviceUpdate input.
type DeviceRequest struct {
	RolloutID string       `json:"rolloutId"`
	DeviceID  string       `json:"deviceId"`
	Address   string       `json:"address"`
	Firmware  Firmware     `json:"firmware"`
	Policy    DevicePolicy `json:"policy,omitzero"`
}

// Device outcomes.
const (
	OutcomeUpdated        = "updated"
	OutcomeAlreadyCurrent = "already-current"
	OutcomeFailed         = "failed"
	OutcomeCancelled      = "cancelled"
)

// DeviceResult is the DeviceUpdate result when the device ends on the
// target version; failures are workflow errors carrying the reason.
type DeviceResult struct {
	Outcome         string `json:"outcome"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	WaitedOffline   bool   `json:"waitedOffline,omitempty"` // it was unreachable and came back
}

// Watch asks a device's presence workflow to signal the watcher when the
// device checks in after Since.
type Watch struct {
	DeviceID string    `json:"deviceId"`
	Watcher  string    `json:"watcher"` // workflow ID
	Since    time.Time `json:"since"`
}

// PushRequest is the PushFirmware input.
type PushRequest struct {
	RolloutID string   `json:"rolloutId"`
	DeviceID  string   `json:"deviceId"`
	Address   string   `json:"address"`
	Firmware  Firmware `json:"firmware"`
	// InstallWithin bounds how long a retry waits for a device that may
	// be installing the image an earlier attempt uploaded (device.verifyTimeout).
	InstallWithin time.Duration `json:"installWithin,omitempty"`
}

// PushResult says whether the device took the image or already ran it.
type PushResult struct {
	AlreadyInstalled bool   `json:"alreadyInstalled,omitempty"`
	PreviousVersion  string `json:"previousVersion,omitempty"`
	BytesSent        int64  `json:"bytesSent"`
}

// VerifyRequest is the VerifyVersion input. Within bounds the polling,
// leaving the activity's start-to-close timeout as a backstop.
type VerifyRequest struct {
	DeviceID        string        `json:"deviceId"`
	Address         string        `json:"address"`
	Version         string        `json:"version"`
	PreviousVersion string        `json:"previousVersion,omitempty"`
	Within          time.Duration `json:"within"`
}

// VerifyResult is the version the device reported.
type VerifyResult struct {
	Version string `json:"version"`
}
