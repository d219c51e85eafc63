package workflows

import "go.temporal.io/sdk/temporal"

// Names that users, the stock temporal CLI and the Web UI rely on.
const (
	TaskQueue = "firmware-rollout"

	FirmwareRolloutWorkflow = "FirmwareRollout"
	DeviceUpdateWorkflow    = "DeviceUpdate"

	ListTargetsActivity   = "ListTargets"
	PushFirmwareActivity  = "PushFirmware"
	VerifyVersionActivity = "VerifyVersion"

	ProgressQuery = "progress"
	PauseUpdate   = "pause"
	ResumeUpdate  = "resume"
	CancelUpdate  = "cancel"
	ApproveUpdate = "approve"

	// A device's check-in and a device workflow's request to hear of it.
	DevicePresenceWorkflow = "DevicePresence"
	WatchDeviceActivity    = "WatchDevice"
	CheckinSignal          = "checkin"
	WatchSignal            = "watch"
)

// Search attributes (all Keyword) that make rollouts and device updates
// filterable in the Web UI and in `temporal workflow list --query`.
var (
	RolloutIDAttr       = temporal.NewSearchAttributeKeyKeyword("RolloutID")
	FirmwareVersionAttr = temporal.NewSearchAttributeKeyKeyword("FirmwareVersion")
	DeviceIDAttr        = temporal.NewSearchAttributeKeyKeyword("DeviceID")
	RolloutStatusAttr   = temporal.NewSearchAttributeKeyKeyword("RolloutStatus")
)

// SearchAttributeNames lists the attributes the namespace must have.
var SearchAttributeNames = []string{"RolloutID", "FirmwareVersion", "DeviceID", "RolloutStatus"}

// Application error types. The permanent ones are listed as non-retryable
// in the device retry policy, so such a refusal costs exactly one attempt.
const (
	ErrDeviceRefused    = "DeviceRefused"    // a 4xx other than 408/422/429
	ErrChecksumMismatch = "ChecksumMismatch" // 422, or the image digest differs from the spec
	ErrWrongVersion     = "WrongVersion"     // the device came back on another version
	ErrBadDeviceAnswer  = "BadDeviceAnswer"  // a redirect or an unparseable answer
	ErrFirmwareSource   = "FirmwareSource"   // the image cannot be read at its URL
	ErrSignatureInvalid = "SignatureInvalid" // no signature this worker accepts: missing, not verifying, or no key to check it
	// ErrDeviceTLS: the device's certificate is not trusted, or it refused
	// ours. A handshake cut by the network is DeviceUnreachable instead.
	ErrDeviceTLS = "DeviceTLS"
	// ErrDeviceUnreachable is transient: no connection to the device.
	ErrDeviceUnreachable = "DeviceUnreachable"
	// ErrDeviceOffline: unreachable, and no check-in within waitOnline.
	ErrDeviceOffline  = "DeviceOffline"
	ErrInvalidSpec    = "InvalidSpec"
	ErrInventory      = "InvalidInventory"
	ErrEmptySelection = "EmptySelection"
)

// PermanentDeviceErrors never get better by retrying.
var PermanentDeviceErrors = []string{
	ErrDeviceRefused, ErrChecksumMismatch, ErrWrongVersion, ErrBadDeviceAnswer, ErrFirmwareSource,
	ErrSignatureInvalid, ErrDeviceTLS,
}
