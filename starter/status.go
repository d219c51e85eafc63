package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show progress, outcomes and failures; exit 1 if the rollout ended unsuccessfully",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.BoolFlag{Name: "failures", Usage: "list every failed device with its reason, a page at a time"},
			&cli.IntFlag{Name: "page", Usage: "with --failures: page `N` (1 first)", Value: 1},
			&cli.IntFlag{Name: "page-size", Usage: "with --failures: devices per page", Value: 100},
		},
		OnUsageError: usageError,
		Action:       showStatus,
	}
}

func showStatus(c *cli.Context) error {
	id, err := rolloutID(c)
	if err != nil {
		return err
	}
	cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return failed("%v", err)
	}
	defer cl.Close()
	if c.Bool("failures") {
		return listFailures(c, cl, id)
	}

	desc, err := cl.DescribeWorkflow(c.Context, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return badInput("no rollout %s (list them with: starter list)", id)
	}
	if err != nil {
		return failed("describing rollout %s: %v", id, err)
	}
	var report workflows.Report
	if desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		if report, err = queryProgress(c.Context, cl, id); err != nil {
			return failed("rollout %s is running but no worker answered the progress query: %v", id, err)
		}
	} else if err := cl.GetWorkflow(c.Context, id, "").Get(c.Context, &report); err != nil {
		return rolloutError(id, err)
	}

	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return failed("%v", err)
		}
	} else {
		details(c.App.Writer, report, time.Now())
	}
	if report.Status.Ended() && report.Status != workflows.StatusCompleted {
		return cli.Exit("", 1)
	}
	return nil
}
