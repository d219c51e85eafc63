package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
)

// healthCheckTimeout bounds the check of the Temporal frontend behind one
// GET /healthz.
const healthCheckTimeout = 5 * time.Second

// health answers GET /healthz for container health checks and probes: 200
// while the worker runs and the Temporal frontend answers, 503 once it is
// shutting down or when Temporal does not answer.
type health struct {
	temporal client.Client
	stopping atomic.Bool
}

// BeginShutdown turns the answer to 503: the worker takes no new work.
func (h *health) BeginShutdown(time.Duration) { h.stopping.Store(true) }

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if h.stopping.Load() {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
	defer cancel()
	if _, err := h.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		http.Error(w, "temporal unreachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// serveHealth listens on addr until stop is called.
func serveHealth(addr string, h *health, logger *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	logger.Info("serving health checks", "address", l.Addr().String(), "path", "/healthz")
	return func() { _ = srv.Close() }, nil
}
