package workflows

import "time"

// Status is the rollout's state, also its RolloutStatus search attribute.
type Status string

const (
	StatusRunning    Status = "running"
	StatusPaused     Status = "paused"
	StatusCancelling Status = "cancelling"

	StatusCompleted             Status = "completed"
	StatusCompletedWithFailures Status = "completed-with-failures"
	StatusCancelled             Status = "cancelled"
)

// Ended reports whether no device will start or run any more.
func (s Status) Ended() bool {
	switch s {
	case StatusCompleted, StatusCompletedWithFailures, StatusCancelled:
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

// DeviceFailure is why one device did not end on the target version.
type DeviceFailure struct {
	DeviceID string `json:"deviceId"`
	Reason   string `json:"reason"`
}

// Report is the answer to the progress query and the rollout's result.
type Report struct {
	RolloutID string          `json:"rolloutId"`
	Version   string          `json:"version"`
	Status    Status          `json:"status"`
	Reason    string          `json:"reason,omitempty"`
	Selected  int             `json:"selected"`
	Started   int             `json:"started"`
	Running   int             `json:"running"`
	Counts    Counts          `json:"counts"`
	Failures  []DeviceFailure `json:"failures,omitempty"` // the first MaxListedFailures
	StartedAt time.Time       `json:"startedAt"`
	EndedAt   time.Time       `json:"endedAt,omitzero"`
	Runs      int             `json:"runs"` // workflow runs so far (continue-as-new)
}
