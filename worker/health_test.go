package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// /healthz fails when Temporal does not answer and once the worker is
// stopping, whatever Temporal says.
func TestHealthzUnhealthy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	nowhere := l.Addr().String()
	require.NoError(t, l.Close())
	cl, err := client.NewLazyClient(client.Options{HostPort: nowhere})
	require.NoError(t, err)
	defer cl.Close()
	h := &health{temporal: cl}

	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	rec := get("/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "temporal unreachable")
	assert.Equal(t, http.StatusNotFound, get("/").Code)

	h.BeginShutdown(0)
	rec = get("/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "stopping\n", rec.Body.String())
}
