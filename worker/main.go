// Command worker runs the FirmwareRollout and DeviceUpdate workflows and
// the activities that talk to devices.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	// Maintenance windows name IANA time zones; embed the database so a
	// minimal container image resolves them like any other host.
	_ "time/tzdata"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
)

func main() {
	app := &cli.App{
		Name:  "worker",
		Usage: "run firmware rollouts: polls the task queue and pushes images to devices",
		Flags: append(append(append(connection.Flags(), deviceTLSFlags()...), codecEndpointFlags()...),
			&cli.StringFlag{
				Name:  "device-token-file",
				Usage: "read the devices' bearer token from `FILE` (default: $DEVICE_TOKEN)",
			},
			&cli.StringSliceFlag{
				Name:    "firmware-public-key",
				Usage:   "push only firmware signed by the ed25519 PEM public key in `FILE` (repeatable, any key may sign)",
				EnvVars: []string{"FIRMWARE_PUBLIC_KEY_FILE"},
			},
			&cli.IntFlag{
				Name:  "max-concurrent-activities",
				Usage: "activities (pushes, verifies) this worker runs at once",
				Value: 200,
			},
			&cli.IntFlag{
				Name:  "max-concurrent-workflow-tasks",
				Usage: "workflow tasks this worker runs at once",
				Value: 100,
			},
			&cli.IntFlag{
				Name:  "workflow-pollers",
				Usage: "concurrent polls for workflow tasks: a rollout's children each need a few workflow tasks",
				Value: 8,
			},
			&cli.IntFlag{
				Name:  "activity-pollers",
				Usage: "concurrent polls for activity tasks (most arrive eagerly with workflow tasks)",
				Value: 4,
			},
			&cli.StringFlag{
				Name:  "checkin-listen",
				Usage: "serve device check-ins (POST /checkin/{deviceID}) on `HOST:PORT`; off when empty",
			},
			&cli.IntFlag{
				Name:  "sticky-cache-size",
				Usage: "workflow executions kept in memory between workflow tasks (0: SDK default, 10,000)",
			},
			&cli.StringFlag{
				Name:  "metrics-addr",
				Usage: "serve Prometheus metrics (the SDK's and the rollouts') on `HOST:PORT` at /metrics; off when empty",
			},
			&cli.StringFlag{
				Name:  "log-format",
				Usage: "log lines as `FORMAT`: text (key=value) or json (one object a line)",
				Value: "text",
			},
			&cli.StringFlag{
				Name:  "log-level",
				Usage: "log at `LEVEL` and above: debug, info, warn or error",
				Value: "info",
			},
			&cli.DurationFlag{
				Name:  "shutdown-grace",
				Usage: "on SIGTERM or SIGINT, running pushes get `DUR` to finish; those still running are then cut, and the next worker resumes them",
				Value: defaultShutdownGrace,
			},
			&cli.StringFlag{
				Name:  "health-listen",
				Usage: "serve GET /healthz on `HOST:PORT` (200 while the worker runs and reaches Temporal, else 503); off when empty",
			},
		),
		Action:          runWorker,
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cli.Exit("worker: "+err.Error(), 2)
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if exit, ok := err.(cli.ExitCoder); ok {
			os.Exit(exit.ExitCode())
		}
		os.Exit(1)
	}
}
