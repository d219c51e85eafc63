package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// progressLine is the one-line live view of a rollout. When the rollout
// waits for the operator or for time, the line says for what.
func progressLine(r workflows.Report, now time.Time) string {
	done := r.Counts.Done()
	elapsed := now.Sub(r.StartedAt)
	line := fmt.Sprintf("%s %-10s %s %d/%d done  %d failed  %d running  %s  elapsed %s",
		r.RolloutID, r.Status, bar(done, r.Selected, 20), done, r.Selected, r.Counts.Failed,
		r.Running, rate(done, elapsed), shortDuration(elapsed))
	if len(r.Phases) > 1 {
		line += fmt.Sprintf("  phase %s (%d/%d)", r.Phases[r.Phase].Name, r.Phase+1, len(r.Phases))
	}
	if hint := waitingFor(r, now); hint != "" {
		line += "  -- " + hint
	}
	return line
}

// waitingFor says what a rollout that is not moving waits for.
func waitingFor(r workflows.Report, now time.Time) string {
	switch r.Status {
	case workflows.StatusHalted:
		return r.Reason + "; starter resume " + r.RolloutID + " overrides, starter cancel " + r.RolloutID + " ends it"
	case workflows.StatusAwaitingApproval:
		return "approve with: starter approve " + r.RolloutID
	case workflows.StatusPaused:
		return "resume with: starter resume " + r.RolloutID
	case workflows.StatusWaitingWindow:
		if !r.NextWindow.IsZero() {
			return "next window opens " + r.NextWindow.Local().Format("Mon 2006-01-02 15:04 MST") + " (in " + shortDuration(r.NextWindow.Sub(now)) + ")"
		}
	}
	return ""
}

func bar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

func rate(done int, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "-- dev/s"
	}
	return fmt.Sprintf("%.1f dev/s", float64(done)/elapsed.Seconds())
}

func shortDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// elapsedOf is how long the rollout ran, or has run so far.
func elapsedOf(r workflows.Report, now time.Time) time.Duration {
	if !r.EndedAt.IsZero() {
		return r.EndedAt.Sub(r.StartedAt)
	}
	return now.Sub(r.StartedAt)
}

// summary is the closing view of an ended rollout.
func summary(w io.Writer, r workflows.Report, now time.Time, maxFailures int) {
	elapsed := elapsedOf(r, now)
	fmt.Fprintf(w, "rollout %s %s in %s: %d devices, %d updated, %d already current, %d failed, %d cancelled (%s)\n",
		r.RolloutID, r.Status, shortDuration(elapsed), r.Selected, r.Counts.Succeeded,
		r.Counts.AlreadyCurrent, r.Counts.Failed, r.Counts.Cancelled, rate(r.Counts.Done(), elapsed))
	if r.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", r.Reason)
	}
	failures(w, r, maxFailures)
}

// details is the status view.
func details(w io.Writer, r workflows.Report, now time.Time) {
	elapsed := elapsedOf(r, now)
	fmt.Fprintf(w, "rollout   %s\n", r.RolloutID)
	fmt.Fprintf(w, "status    %s\n", r.Status)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason    %s\n", r.Reason)
	}
	fmt.Fprintf(w, "firmware  %s\n", r.Version)
	fmt.Fprintf(w, "devices   %d selected, %d started, %d running\n", r.Selected, r.Started, r.Running)
	fmt.Fprintf(w, "outcomes  %d updated, %d already current, %d failed, %d cancelled\n",
		r.Counts.Succeeded, r.Counts.AlreadyCurrent, r.Counts.Failed, r.Counts.Cancelled)
	fmt.Fprintf(w, "elapsed   %s (%s)\n", shortDuration(elapsed), rate(r.Counts.Done(), elapsed))
	if hint := waitingFor(r, now); hint != "" {
		fmt.Fprintf(w, "waiting   %s\n", hint)
	}
	if len(r.Phases) > 1 {
		phaseTable(w, r)
	}
	offline(w, r)
	failures(w, r, workflows.MaxListedFailures)
}

// offline lists the devices that were unreachable when their turn came.
func offline(w io.Writer, r workflows.Report) {
	if r.Offline == 0 {
		return
	}
	fmt.Fprintf(w, "offline when their turn came (%d):\n", r.Offline)
	for _, d := range r.OfflineIDs {
		fmt.Fprintf(w, "  %s  %s\n", d.DeviceID, d.Outcome)
	}
	if r.Offline > len(r.OfflineIDs) {
		fmt.Fprintf(w, "  ... and %d more\n", r.Offline-len(r.OfflineIDs))
	}
}

// phaseTable renders the phases with their plan and outcomes.
func phaseTable(w io.Writer, r workflows.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tstate\tdevices\tstarted\tupdated\tcurrent\tfailed\tcancelled")
	for i, p := range r.Phases {
		marker := " "
		if i == r.Phase && !r.Status.Ended() {
			marker = ">"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", marker, p.Name, p.State, p.Devices, p.Started,
			p.Counts.Succeeded, p.Counts.AlreadyCurrent, p.Counts.Failed, p.Counts.Cancelled)
	}
	_ = tw.Flush()
}

func failures(w io.Writer, r workflows.Report, limit int) {
	if r.Counts.Failed == 0 {
		return
	}
	fmt.Fprintf(w, "failed devices (%d):\n", r.Counts.Failed)
	for i, f := range r.Failures {
		if i == limit {
			break
		}
		fmt.Fprintf(w, "  %s  %s\n", f.DeviceID, f.Reason)
	}
	if listed := min(limit, len(r.Failures)); r.Counts.Failed > listed {
		fmt.Fprintf(w, "  ... and %d more\n", r.Counts.Failed-listed)
	}
}
