package main

import (
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "recent rollouts and their state",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "limit", Usage: "show at most `N` rollouts", Value: 20},
		},
		OnUsageError: usageError,
		Action:       listRollouts,
	}
}

func listRollouts(c *cli.Context) error {
	if c.Int("limit") < 1 {
		return badInput("--limit must be at least 1, got %d", c.Int("limit"))
	}
	cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return failed("%v", err)
	}
	defer cl.Close()
	// Each continue-as-new run is an execution of its own: list only the
	// latest run of every rollout.
	resp, err := cl.ListWorkflow(c.Context, &workflowservice.ListWorkflowExecutionsRequest{
		Query:    fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'ContinuedAsNew'", workflows.FirmwareRolloutWorkflow),
		PageSize: int32(c.Int("limit")),
	})
	if err != nil {
		return failed("listing rollouts: %v", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLLOUT\tFIRMWARE\tSTATUS\tWORKFLOW\tSTARTED")
	for i, e := range resp.GetExecutions() {
		if i == c.Int("limit") {
			break
		}
		attrs := e.GetSearchAttributes().GetIndexedFields()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.GetExecution().GetWorkflowId(),
			keyword(attrs["FirmwareVersion"]), keyword(attrs["RolloutStatus"]),
			e.GetStatus(), e.GetStartTime().AsTime().Local().Format("2006-01-02 15:04:05"))
	}
	if err := tw.Flush(); err != nil {
		return failed("%v", err)
	}
	return nil
}

// keyword decodes a Keyword search attribute value.
func keyword(p *commonpb.Payload) string {
	var s string
	if p == nil || converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
		return "-"
	}
	return s
}
