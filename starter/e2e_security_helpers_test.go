//go:build e2e

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runBinaryEnv runs a built binary to completion with env added to this
// process's environment, and returns its output and exit code.
func runBinaryEnv(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	return runCommandEnv(t, env, filepath.Join(binDir, name), args...)
}

func runCommandEnv(t *testing.T, env []string, path string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

func randomSecretBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func randomSecretHex(t *testing.T, n int) string { return hex.EncodeToString(randomSecretBytes(t, n)) }

// requireEveryDeviceUpdatedOnce checks devicemock's own count.
func requireEveryDeviceUpdatedOnce(t *testing.T, devices *fleetSim, n int, version string) {
	t.Helper()
	st := devices.stats(t)
	require.Len(t, st.Devices, n)
	for _, d := range st.Devices {
		assert.Equal(t, version, d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
	}
}

// requireOneLineError checks a failure is reported in one line.
func requireOneLineError(t *testing.T, out string) {
	t.Helper()
	require.NotEmpty(t, strings.TrimSpace(out))
	require.Equal(t, 1, len(scanLines(strings.TrimSpace(out))), "one line, got:\n%s", out)
}
