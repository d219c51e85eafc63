package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/worker"
)

// defaultShutdownGrace is how long running pushes get to finish on SIGTERM
// unless --shutdown-grace says otherwise; container orchestrators wait
// about as long (Kubernetes 30s) before they kill.
const defaultShutdownGrace = 30 * time.Second

// stopMargin is how long, after the grace, the SDK worker waits for the
// cut pushes to report before it cancels whatever still runs (it does not
// wait for the answers of what it cancels, so pushes must be cut first).
const stopMargin = 5 * time.Second

// sdkStopTimeout is the SDK's WorkerStopTimeout for a shutdown grace.
func sdkStopTimeout(grace time.Duration) time.Duration { return grace + stopMargin }

// exitDeadline is when, after the signal, the worker exits even if the
// SDK has not stopped (it stops its workflow, local activity and activity
// workers one after another, each with its own timeout). What is lost then
// (a local verify, a workflow task) is redone by the next worker once the
// server times it out; the pushes have reported by then.
func exitDeadline(grace time.Duration) time.Duration { return grace + 2*stopMargin }

// drainer is what must hear of the shutdown before the SDK worker stops:
// the activities, whose pushes get the grace to finish, and the health
// endpoint.
type drainer interface {
	BeginShutdown(grace time.Duration)
}

// runUntilStopped runs w until SIGINT or SIGTERM, or until it fails. On a
// signal, polling stops, running pushes get grace to finish and are cut
// after it (they report, and the next worker resumes them), and the worker
// exits within exitDeadline(grace). A second signal exits at once.
func runUntilStopped(w worker.Worker, grace time.Duration, logger *slog.Logger, drainers ...drainer) error {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	stop := make(chan any)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(stop) }()

	select {
	case err := <-ran:
		return err
	case sig := <-signals:
		logger.Info("stopping: no new work; running pushes get the shutdown grace to finish",
			"signal", sig.String(), "grace", grace)
	}
	for _, d := range drainers {
		d.BeginShutdown(grace)
	}
	close(stop)
	giveUp := time.NewTimer(exitDeadline(grace))
	defer giveUp.Stop()
	select {
	case err := <-ran:
		logger.Info("worker stopped")
		return err
	case <-giveUp.C:
		logger.Warn("worker did not stop in time; exiting anyway", "waited", exitDeadline(grace))
	case sig := <-signals:
		logger.Warn("second signal: exiting without waiting", "signal", sig.String())
	}
	return nil
}
