//go:build e2e

package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The reference point of the throughput goal, measured on the same server
// in the same run: a sliding window of child workflows, each running two
// no-op activities, as in Temporal's batch sliding-window sample. It runs
// in this process on a task queue of its own.

type baselineInput struct {
	Records, Concurrency, Next int
}

// baselineWindow keeps Concurrency record children running and continues
// as new every 500 records, after they finish.
func baselineWindow(ctx workflow.Context, in baselineInput) error {
	running, started := 0, 0
	end := min(in.Records, in.Next+500)
	for next := in.Next; next < end; next++ {
		if err := workflow.Await(ctx, func() bool { return running < in.Concurrency }); err != nil {
			return err
		}
		running++
		started++
		f := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: fmt.Sprintf("baseline/%d", next),
		}), baselineRecord)
		workflow.Go(ctx, func(ctx workflow.Context) {
			_ = f.Get(ctx, nil)
			running--
		})
	}
	if err := workflow.Await(ctx, func() bool { return running == 0 }); err != nil {
		return err
	}
	if end < in.Records {
		return workflow.NewContinueAsNewError(ctx, baselineWindow, baselineInput{in.Records, in.Concurrency, end})
	}
	return nil
}

func baselineRecord(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for range 2 {
		if err := workflow.ExecuteActivity(ctx, baselineNoop).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func baselineNoop(context.Context) error { return nil }

// runBaseline runs the baseline over n records and returns records/s.
func (s *stack) runBaseline(n, concurrency int) float64 {
	w := worker.New(s.client, "baseline", worker.Options{})
	w.RegisterWorkflow(baselineWindow)
	w.RegisterWorkflow(baselineRecord)
	w.RegisterActivity(baselineNoop)
	if err := w.Start(); err != nil {
		s.t.Fatal(err)
	}
	defer w.Stop()
	began := time.Now()
	run, err := s.client.ExecuteWorkflow(s.t.Context(), client.StartWorkflowOptions{ID: "baseline", TaskQueue: "baseline"},
		baselineWindow, baselineInput{Records: n, Concurrency: concurrency})
	if err == nil {
		err = run.Get(s.t.Context(), nil)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return float64(n) / time.Since(began).Seconds()
}
