package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// listFailures pages through every failed device of a rollout. The
// rollout's report keeps only the first failures (its size must not grow
// with the fleet); the full list comes from the failed DeviceUpdate
// workflows in visibility, each with the reason it failed with.
func listFailures(c *cli.Context, cl client.Client, id string) error {
	page, size := c.Int("page"), c.Int("page-size")
	if page < 1 || size < 1 || size > 1000 {
		return badInput("--page must be at least 1 and --page-size between 1 and 1000, got %d and %d", page, size)
	}
	query := fmt.Sprintf("WorkflowType = 'DeviceUpdate' AND RolloutID = '%s' AND ExecutionStatus = 'Failed'", id)
	count, err := cl.CountWorkflow(c.Context, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return failed("counting failed devices of %s: %v", id, err)
	}
	total := int(count.GetCount())
	pages := max(1, (total+size-1)/size)
	fmt.Fprintf(c.App.Writer, "failed devices of %s: page %d of %d (%d failed, %d per page)\n", id, page, pages, total, size)

	var token []byte
	for n := 1; ; n++ {
		resp, err := cl.ListWorkflow(c.Context, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, PageSize: int32(size), NextPageToken: token,
		})
		if err != nil {
			return failed("listing failed devices of %s: %v", id, err)
		}
		if n == page {
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			for _, e := range resp.GetExecutions() {
				exec := e.GetExecution()
				fmt.Fprintf(tw, "  %s\t%s\n", deviceOf(id, exec.GetWorkflowId()), failureReason(c, cl, exec.GetWorkflowId(), exec.GetRunId()))
			}
			return tw.Flush()
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil // past the last page: the header said how many there are
		}
	}
}

func deviceOf(rolloutID, workflowID string) string {
	return workflowID[min(len(workflowID), len(rolloutID)+1):]
}

// failureReason reads the failure a DeviceUpdate closed with.
func failureReason(c *cli.Context, cl client.Client, workflowID, runID string) string {
	events := cl.GetWorkflowHistory(c.Context, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for events.HasNext() {
		e, err := events.Next()
		if err != nil {
			return "(reason unavailable: " + err.Error() + ")"
		}
		if attrs := e.GetWorkflowExecutionFailedEventAttributes(); attrs != nil {
			return attrs.GetFailure().GetMessage()
		}
	}
	return "(no failure recorded)"
}
