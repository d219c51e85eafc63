package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/worker/checkin"
	"github.com/dovaclean/go-update-orchestrator/worker/connection"
)

func checkinCommand() *cli.Command {
	return &cli.Command{
		Name:         "checkin",
		Usage:        "report that a device is back online, as the device would (wakes the rollouts waiting for it)",
		ArgsUsage:    "DEVICE",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return badInput("checkin needs exactly one device ID, got %d arguments", c.NArg())
			}
			device := c.Args().First()
			cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return failed("%v", err)
			}
			defer cl.Close()
			if err := checkin.Send(c.Context, cl, c.String("task-queue"), device); err != nil {
				return failed("check-in of %s not recorded: %v", device, err)
			}
			fmt.Fprintf(c.App.Writer, "check-in of %s recorded\n", device)
			return nil
		},
	}
}
