package telemetry

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// reportEvery is how often the SDK's and the product's metrics reach the
// Prometheus registry; a scrape sees them at most this late.
const reportEvery = time.Second

// durationBuckets (seconds) serve every duration histogram: the SDK's task
// and request latencies (milliseconds) as well as pushes and verifies
// (seconds to many minutes).
var durationBuckets = []float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
}

// ServeMetrics serves Prometheus metrics on addr at /metrics, until stop
// is called. The handler goes into the Temporal client's options: the SDK
// reports its own metrics through it, and workflows and activities reach
// it with workflow.GetMetricsHandler and activity.GetMetricsHandler.
func ServeMetrics(addr string, logger *slog.Logger) (handler client.MetricsHandler, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              registry,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: durationBuckets,
		OnRegisterError: func(err error) {
			logger.Error("a metric could not be registered", "error", err)
		},
	})
	scope, closeScope := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, reportEvery)

	mux := http.NewServeMux()
	mux.Handle("/metrics", reporter.HTTPHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	logger.Info("serving Prometheus metrics", "address", l.Addr().String(), "path", "/metrics")
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), func() {
		_ = closeScope.Close() // reports what is pending
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
