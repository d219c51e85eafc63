package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func controlCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name:         name,
		Usage:        usage,
		ArgsUsage:    "ID",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return control(c, name)
		},
	}
}

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "stop starting devices and end the rollout as cancelled; running updates finish",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "also cancel in-flight pushes (an image a device already accepted is still verified)"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return control(c, workflows.CancelUpdate, workflows.CancelRequest{Force: c.Bool("force")})
		},
	}
}

// control sends an update and waits for the rollout to acknowledge it.
func control(c *cli.Context, name string, args ...any) error {
	id, err := rolloutID(c)
	if err != nil {
		return err
	}
	cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return failed("%v", err)
	}
	defer cl.Close()
	handle, err := cl.UpdateWorkflow(c.Context, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var report workflows.Report
	if err == nil {
		err = handle.Get(c.Context, &report)
	}
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return badInput("no running rollout %s (list them with: starter list)", id)
	case err != nil:
		return failed("%s %s refused: %v", name, id, err)
	}
	fmt.Fprintf(c.App.Writer, "%s %s: acknowledged, status %s (%d/%d done, %d running)\n",
		name, id, report.Status, report.Counts.Done(), report.Selected, report.Running)
	return nil
}
