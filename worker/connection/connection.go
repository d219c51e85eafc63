// Package connection holds the Temporal connection flags shared by the
// worker and the starter, so both read the same flags and environment:
// address, namespace, TLS and mTLS, the API key and payload encryption.
package connection

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// Flags are --address, --namespace, --task-queue and the security flags.
func Flags() []cli.Flag {
	return append([]cli.Flag{
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
	}, securityFlags()...)
}

// Options are the client options the flags describe. Their errors are
// the user's (a missing or unreadable file, a bad combination), so a
// command checks them before it does anything.
func Options(c *cli.Context) (client.Options, error) {
	opts := client.Options{HostPort: c.String("address"), Namespace: c.String("namespace")}
	if err := applySecurity(c, &opts); err != nil {
		return client.Options{}, err
	}
	return opts, nil
}

// Dial connects to Temporal with the connection flags; each of adjust
// then tunes the options (the worker adds its metrics handler).
func Dial(c *cli.Context, logger *slog.Logger, adjust ...func(*client.Options)) (client.Client, error) {
	opts, err := Options(c)
	if err != nil {
		return nil, err
	}
	opts.Logger = sdklog.NewStructuredLogger(logger)
	for _, f := range adjust {
		f(&opts)
	}
	if c.Bool("tls-disable-host-verification") && opts.ConnectionOptions.TLS != nil {
		logger.Warn("TLS host verification is off: any server with a certificate from the CA is accepted, whatever its name")
	}
	cl, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s (namespace %s): %w%s", c.String("address"), c.String("namespace"), err, dialHint(opts, err))
	}
	logger.Info("connected to Temporal", "address", c.String("address"), "namespace", c.String("namespace"),
		"tls", opts.ConnectionOptions.TLS != nil, "clientCertificate", c.String("tls-cert") != "",
		"apiKey", opts.Credentials != nil, "payloadEncryption", encrypting(c))
	return cl, nil
}
