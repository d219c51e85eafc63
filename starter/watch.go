package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:         "watch",
		Usage:        "show live progress until the rollout ends; exit code says how it ended",
		ArgsUsage:    "ID",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			id, err := rolloutID(c)
			if err != nil {
				return err
			}
			cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return failed("%v", err)
			}
			defer cl.Close()
			return watch(c, cl, id)
		},
	}
}

// Progress is polled this often; on a terminal the line is redrawn in
// place, elsewhere (logs, CI) a line is printed when progress changed
// and at most every logEvery.
const (
	pollEvery = time.Second
	logEvery  = 5 * time.Second
)

type outcome struct {
	report workflows.Report
	err    error
}

// watch follows the rollout (across continue-as-new runs) until it ends.
// Interrupting it leaves the rollout running; watch re-attaches.
func watch(c *cli.Context, cl client.Client, id string) error {
	ctx := c.Context
	w := c.App.Writer
	ended := make(chan outcome, 1)
	go func() {
		var o outcome
		o.err = cl.GetWorkflow(ctx, id, "").Get(ctx, &o.report)
		ended <- o
	}()

	tty := isTerminal(w)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var lastLine string
	var lastPrinted time.Time
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "\nstopped watching; rollout %s goes on. Re-attach with: starter watch %s\n", id, id)
			return cli.Exit("", 130)
		case o := <-ended:
			if tty && lastLine != "" {
				fmt.Fprint(w, "\r\033[K")
			}
			return ending(c, id, o)
		case now := <-tick.C:
			r, err := queryProgress(ctx, cl, id)
			line := ""
			if err != nil {
				line = fmt.Sprintf("%s: no progress answer (%v)", id, err)
			} else {
				line = progressLine(r, now)
			}
			switch {
			case tty:
				fmt.Fprint(w, "\r\033[K"+line)
				lastLine = line
			case line != lastLine && now.Sub(lastPrinted) >= logEvery:
				fmt.Fprintln(w, line)
				lastLine, lastPrinted = line, now
			}
		}
	}
}

// ending prints how the rollout ended and picks the exit code.
func ending(c *cli.Context, id string, o outcome) error {
	if o.err != nil {
		return rolloutError(id, o.err)
	}
	summary(c.App.Writer, o.report, time.Now(), 20)
	if len(o.report.Failures) > 20 || o.report.Counts.Failed > len(o.report.Failures) {
		fmt.Fprintf(c.App.Writer, "all listed failures: starter status %s\n", id)
	}
	if o.report.Status != workflows.StatusCompleted {
		return cli.Exit("", 1)
	}
	return nil
}

// rolloutError explains a rollout workflow that did not return a report.
func rolloutError(id string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return badInput("no rollout %s (list them with: starter list)", id)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return failed("rollout %s failed: %s", id, appErr.Message())
	}
	var terminated *temporal.TerminatedError
	if errors.As(err, &terminated) {
		return failed("rollout %s was terminated", id)
	}
	return failed("rollout %s: %v", id, err)
}

// queryProgress asks the rollout for its progress, without waiting long
// for a worker that is down.
func queryProgress(ctx context.Context, cl client.Client, id string) (workflows.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r workflows.Report
	v, err := cl.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
	if err != nil {
		return r, err
	}
	return r, v.Get(&r)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
