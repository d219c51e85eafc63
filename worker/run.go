package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/worker/checkin"
	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/worker/telemetry"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func runWorker(c *cli.Context) error {
	logger, err := telemetry.NewLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
	if err != nil {
		return cli.Exit("worker: "+err.Error(), 2)
	}
	// Every setting is checked before anything is logged or started.
	if _, err := connection.Options(c); err != nil {
		return cli.Exit("worker: "+err.Error(), 2)
	}
	token, err := deviceToken(c.String("device-token-file"))
	if err != nil {
		return cli.Exit("worker: "+err.Error(), 2)
	}
	keys, err := signing.LoadPublicKeys(c.StringSlice("firmware-public-key"))
	if err != nil {
		return cli.Exit("worker: --firmware-public-key: "+err.Error(), 2)
	}
	for _, f := range []struct {
		name string
		min  int
	}{{"max-concurrent-activities", 1}, {"max-concurrent-workflow-tasks", 2}, {"workflow-pollers", 2}, {"activity-pollers", 1}, {"sticky-cache-size", 0}} {
		if c.Int(f.name) < f.min {
			return cli.Exit(fmt.Sprintf("worker: --%s must be at least %d, got %d", f.name, f.min, c.Int(f.name)), 2)
		}
	}
	codecEndpoint, err := newCodecEndpoint(c, logger)
	if err != nil {
		return cli.Exit("worker: "+err.Error(), 2)
	}
	grace := c.Duration("shutdown-grace")
	if grace < 0 {
		return cli.Exit(fmt.Sprintf("worker: --shutdown-grace must not be negative, got %s", grace), 2)
	}
	// Last of the checks: it logs what it loaded.
	tlsConfig, err := loadDeviceTLS(c, logger)
	if err != nil {
		return cli.Exit("worker: "+err.Error(), 2)
	}
	if size := c.Int("sticky-cache-size"); size > 0 {
		worker.SetStickyWorkflowCacheSize(size)
	}
	var metrics client.MetricsHandler
	if addr := c.String("metrics-addr"); addr != "" {
		handler, stop, err := telemetry.ServeMetrics(addr, logger)
		if err != nil {
			return cli.Exit("worker: --metrics-addr: "+err.Error(), 2)
		}
		defer stop()
		metrics = handler
	}
	var payloads converter.DataConverter
	cl, err := connection.Dial(c, logger, func(o *client.Options) {
		o.MetricsHandler = metrics
		payloads = o.DataConverter
	})
	if err != nil {
		return cli.Exit("worker: "+err.Error(), 1)
	}
	defer cl.Close()
	if err := ensureSearchAttributes(c.Context, cl, c.String("namespace")); err != nil {
		return cli.Exit("worker: "+err.Error(), 1)
	}

	w := worker.New(cl, c.String("task-queue"), worker.Options{
		MaxConcurrentActivityExecutionSize:     c.Int("max-concurrent-activities"),
		MaxConcurrentWorkflowTaskExecutionSize: c.Int("max-concurrent-workflow-tasks"),
		MaxConcurrentWorkflowTaskPollers:       c.Int("workflow-pollers"),
		MaxConcurrentActivityTaskPollers:       c.Int("activity-pollers"),
		WorkerStopTimeout:                      sdkStopTimeout(grace),
	})
	workflows.Register(w)
	acts := &activities.Activities{Client: activities.NewHTTPClient(tlsConfig.devices), Sources: activities.NewSourceClient(tlsConfig.sources),
		DeviceToken: token, FirmwareKeys: keys, Temporal: cl, Payloads: payloads}
	acts.Register(w)

	if addr := c.String("checkin-listen"); addr != "" {
		stop, err := serveCheckins(addr, checkin.Handler(cl, c.String("task-queue"), logger), logger)
		if err != nil {
			return cli.Exit("worker: --checkin-listen: "+err.Error(), 2)
		}
		defer stop()
	}
	if codecEndpoint != nil {
		stop, err := codecEndpoint.serve(logger)
		if err != nil {
			return cli.Exit("worker: --codec-listen: "+err.Error(), 2)
		}
		defer stop()
	}

	healthz := &health{temporal: cl}
	if addr := c.String("health-listen"); addr != "" {
		stop, err := serveHealth(addr, healthz, logger)
		if err != nil {
			return cli.Exit("worker: --health-listen: "+err.Error(), 2)
		}
		defer stop()
	}

	logger.Info("worker started", "address", c.String("address"), "namespace", c.String("namespace"),
		"taskQueue", c.String("task-queue"), "deviceToken", token != "", "firmwarePublicKeys", len(keys))
	if err := runUntilStopped(w, grace, logger, acts, healthz); err != nil {
		return cli.Exit("worker: "+err.Error(), 1)
	}
	return nil
}

// serveCheckins listens for device check-ins until stop is called.
func serveCheckins(addr string, handler http.Handler, logger *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	logger.Info("serving device check-ins", "address", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// deviceToken reads the devices' bearer token from a file or $DEVICE_TOKEN.
// The token stays in this process: it is never part of a workflow.
func deviceToken(file string) (string, error) {
	if file == "" {
		return os.Getenv("DEVICE_TOKEN"), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--device-token-file: %v", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("--device-token-file: %s is empty", file)
	}
	return token, nil
}

// ensureSearchAttributes registers the product's search attributes when
// the namespace lacks them (a fresh dev server does), so that rollouts
// are filterable from the first run. Where the worker may not register
// them (Temporal Cloud), it says what to run.
func ensureSearchAttributes(ctx context.Context, cl client.Client, namespace string) error {
	missing, err := missingSearchAttributes(ctx, cl, namespace)
	if err != nil || len(missing) == 0 {
		return err
	}
	_, err = cl.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		// Workers started together race to add them: one wins.
		if now, listErr := missingSearchAttributes(ctx, cl, namespace); listErr == nil && len(now) == 0 {
			return nil
		}
		var hint strings.Builder
		for _, name := range workflows.SearchAttributeNames {
			if _, ok := missing[name]; ok {
				fmt.Fprintf(&hint, " --name %s --type Keyword", name)
			}
		}
		return fmt.Errorf("namespace %s lacks search attributes and they could not be added (%v); run: temporal operator search-attribute create --namespace %s%s",
			namespace, err, namespace, hint.String())
	}
	return nil
}

// missingSearchAttributes are the product's attributes the namespace lacks.
func missingSearchAttributes(ctx context.Context, cl client.Client, namespace string) (map[string]enumspb.IndexedValueType, error) {
	existing, err := cl.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("listing search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames {
		if _, ok := existing.GetCustomAttributes()[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	return missing, nil
}
