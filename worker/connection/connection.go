// Package connection holds the Temporal connection flags shared by the
// worker and the starter, so both read the same flags and environment.
package connection

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Flags are --address, --namespace and --task-queue.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "address",
			Usage:   "Temporal frontend `HOST:PORT`",
			Value:   "127.0.0.1:7233",
			EnvVars: []string{"TEMPORAL_ADDRESS"},
		},
		&cli.StringFlag{
			Name:    "namespace",
			Usage:   "Temporal `NAMESPACE`",
			Value:   "default",
			EnvVars: []string{"TEMPORAL_NAMESPACE"},
		},
		&cli.StringFlag{
			Name:  "task-queue",
			Usage: "task `QUEUE` the rollout workflows and activities run on",
			Value: workflows.TaskQueue,
		},
	}
}

// Dial connects to Temporal with the connection flags; each of adjust
// then tunes the options (the worker adds its metrics handler).
func Dial(c *cli.Context, logger *slog.Logger, adjust ...func(*client.Options)) (client.Client, error) {
	options := client.Options{
		HostPort:  c.String("address"),
		Namespace: c.String("namespace"),
		Logger:    sdklog.NewStructuredLogger(logger),
	}
	for _, f := range adjust {
		f(&options)
	}
	cl, err := client.Dial(options)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s (namespace %s): %w", c.String("address"), c.String("namespace"), err)
	}
	return cl, nil
}
