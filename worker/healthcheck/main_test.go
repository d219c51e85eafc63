package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthcheckExitCodes(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer healthy.Close()
	stopping := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	}))
	defer stopping.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String() + "/healthz"
	require.NoError(t, l.Close())

	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"2xx", []string{healthy.URL + "/healthz"}, 0, ""},
		{"503", []string{stopping.URL + "/healthz"}, 1, "503 Service Unavailable"},
		{"nothing listening", []string{"--timeout", "2s", closed}, 1, "connection refused"},
		{"no URL", nil, 2, "want one URL"},
		{"two URLs", []string{healthy.URL, healthy.URL}, 2, "want one URL"},
		{"not http", []string{"ftp://example.com/x"}, 2, "is not an http(s) URL"},
		{"unknown flag", []string{"--retries", "3", healthy.URL}, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			assert.Equal(t, tc.code, run(tc.args, &stderr), stderr.String())
			if tc.says == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tc.says)
				assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line")
			}
		})
	}
}
