package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// presenceIdle is how long a presence workflow with nobody to tell waits
// for news before it ends; the next check-in or watch starts it again.
const presenceIdle = 10 * time.Minute

// presenceHandover bounds a presence workflow's history.
const presenceHandover = 1000

// PresenceState is what a presence workflow carries across
// continue-as-new: who waits for the device, and when it last checked in.
type PresenceState struct {
	LastCheckin time.Time `json:"lastCheckin,omitzero"`
	Watchers    []string  `json:"watchers,omitempty"` // workflow IDs
}

// DevicePresence relays a device's check-ins to the device workflows
// waiting for it. Check-ins (from the worker's /checkin endpoint or
// `starter checkin`) and watches (from DeviceUpdate) both arrive by
// signal-with-start, so neither is lost whether or not it runs; a watch
// that comes after a check-in it has not seen is answered at once.
func DevicePresence(ctx workflow.Context, deviceID string, state *PresenceState) error {
	var st PresenceState
	if state != nil {
		st = *state
	}
	checkins := workflow.GetSignalChannel(ctx, CheckinSignal)
	watches := workflow.GetSignalChannel(ctx, WatchSignal)
	tell := func(watcher string) {
		// A watcher that has ended is not an error worth stopping for.
		_ = workflow.SignalExternalWorkflow(ctx, watcher, "", CheckinSignal, nil).Get(ctx, nil)
	}
	onCheckin := func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		st.LastCheckin = workflow.Now(ctx)
		for _, w := range st.Watchers {
			tell(w)
		}
		st.Watchers = nil
	}
	onWatch := func(c workflow.ReceiveChannel, _ bool) {
		var w Watch
		c.Receive(ctx, &w)
		switch {
		case st.LastCheckin.After(w.Since):
			tell(w.Watcher)
		case !slices.Contains(st.Watchers, w.Watcher):
			st.Watchers = append(st.Watchers, w.Watcher)
		}
	}

	for handled := 0; handled < presenceHandover; handled++ {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(checkins, onCheckin)
		sel.AddReceive(watches, onWatch)
		idle := false
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		if len(st.Watchers) == 0 {
			sel.AddFuture(workflow.NewTimer(timerCtx, presenceIdle), func(workflow.Future) { idle = true })
		}
		sel.Select(ctx)
		cancelTimer()
		if idle && len(st.Watchers) == 0 && !drain(checkins, watches, onCheckin, onWatch) {
			return nil
		}
	}
	drain(checkins, watches, onCheckin, onWatch)
	return workflow.NewContinueAsNewError(ctx, DevicePresenceWorkflow, deviceID, &st)
}

// drain handles the signals already delivered, so that none is lost when
// the run ends; it reports whether there were any.
func drain(checkins, watches workflow.ReceiveChannel, onCheckin, onWatch func(workflow.ReceiveChannel, bool)) bool {
	handled := false
	for checkins.Len() > 0 || watches.Len() > 0 {
		handled = true
		if checkins.Len() > 0 {
			onCheckin(checkins, true)
		}
		if watches.Len() > 0 {
			onWatch(watches, true)
		}
	}
	return handled
}
