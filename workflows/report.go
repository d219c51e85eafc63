package workflows

import "time"

// Status is the rollout's state, also its RolloutStatus search attribute.
type Status string

const (
	StatusScheduled        Status = "scheduled"      // waiting for startAt
	StatusRunning          Status = "running"        // devices are being updated
	StatusWaitingWindow    Status = "waiting-window" // outside the maintenance window
	StatusSoaking          Status = "soaking"        // a phase is done, its soak runs
	StatusAwaitingApproval Status = "awaiting-approval"
	StatusHalted           Status = "halted" // a phase gate failed: resume overrides, cancel ends
	StatusPaused           Status = "paused"
	StatusRollingBack      Status = "rolling-back" // aborted; the updated devices get the previous image
	StatusCancelling       Status = "cancelling"

	StatusCompleted             Status = "completed"
	StatusCompletedWithFailures Status = "completed-with-failures"
	StatusCancelled             Status = "cancelled"
	StatusAborted               Status = "aborted" // too many failures: no device starts again
)

// Ended reports whether the rollout is over: no device will start again.
func (s Status) Ended() bool {
	switch s {
	case StatusCompleted, StatusCompletedWithFailures, StatusCancelled, StatusAborted:
		return true
	}
	return false
}

// MaxListedFailures bounds the failures a report carries, so that the
// query answer and the result stay small whatever the fleet size.
const MaxListedFailures = 100

// Counts are device outcomes; each device is counted once.
type Counts struct {
	Succeeded      int `json:"succeeded"`
	AlreadyCurrent int `json:"alreadyCurrent"`
	Failed         int `json:"failed"`
	Cancelled      int `json:"cancelled"`
}

// Done is the number of devices with an outcome.
func (c Counts) Done() int { return c.Succeeded + c.AlreadyCurrent + c.Failed + c.Cancelled }

// finished is the number of devices that ran to an end, cancelled ones
// aside: what gates and the abort threshold judge.
func (c Counts) finished() int { return c.Succeeded + c.AlreadyCurrent + c.Failed }

// DeviceFailure is why one device did not end on the target version.
type DeviceFailure struct {
	DeviceID string `json:"deviceId"`
	Reason   string `json:"reason"`
}

// OfflineDevice is a device that could not be reached when its turn came,
// and how it ended: updated or already current after it came back, or
// failed.
type OfflineDevice struct {
	DeviceID string `json:"deviceId"`
	Outcome  string `json:"outcome"`
}

// Phase states, in PhaseReport.State.
const (
	PhasePending          = "pending"
	PhaseAwaitingApproval = "awaiting-approval"
	PhaseRunning          = "running"
	PhaseHalted           = "halted"
	PhaseSoaking          = "soaking"
	PhasePassed           = "passed"
	PhaseOverridden       = "overridden" // its gate failed and the operator resumed
)

// PhaseReport is one phase's plan and outcome.
type PhaseReport struct {
	Name     string `json:"name"`
	Devices  int    `json:"devices"` // planned for this phase
	Started  int    `json:"started"`
	Counts   Counts `json:"counts"`
	State    string `json:"state"`
	Approved bool   `json:"approved,omitempty"`
}

// Report is the answer to the progress query and the rollout's result.
type Report struct {
	RolloutID  string          `json:"rolloutId"`
	Version    string          `json:"version"`
	Status     Status          `json:"status"`
	Reason     string          `json:"reason,omitempty"`
	Selected   int             `json:"selected"`
	Started    int             `json:"started"`
	Running    int             `json:"running"`
	Counts     Counts          `json:"counts"`
	Phase      int             `json:"phase"` // index into Phases of the current phase
	Phases     []PhaseReport   `json:"phases,omitempty"`
	NextWindow time.Time       `json:"nextWindow,omitzero"`      // when outside the window: its next opening
	Failures   []DeviceFailure `json:"failures,omitempty"`       // the first MaxListedFailures
	Offline    int             `json:"offline,omitempty"`        // devices unreachable when their turn came
	OfflineIDs []OfflineDevice `json:"offlineDevices,omitempty"` // the first MaxListedFailures of them
	StartedAt  time.Time       `json:"startedAt"`
	EndedAt    time.Time       `json:"endedAt,omitzero"`
	Runs       int             `json:"runs"` // workflow runs so far (continue-as-new)
}
