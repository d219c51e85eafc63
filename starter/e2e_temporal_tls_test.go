//go:build e2e

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
)

// The worker and the starter reach Temporal only through a frontend that
// requires a client certificate from its CA and an API key: configured
// only by the standard environment variables, then only by flags, a
// rollout runs to the end. A wrong API key, a missing client certificate
// and a server name that does not match each fail in one clear line.
func TestE2ETemporalTLS(t *testing.T) {
	pki := newFrontendPKI(t)
	apiKey := "api-" + randomSecretHex(t, 16)
	proxy := startFrontendProxy(t, sharedServer.hostPort, pki, apiKey)
	image, _ := firmwareImage(t, 64<<10)
	apiKeyFile := filepath.Join(t.TempDir(), "api-key")
	require.NoError(t, os.WriteFile(apiKeyFile, []byte(apiKey+"\n"), 0o600))

	// tlsEnv is a complete connection by environment variables only.
	tlsEnv := func(client pemPair, key string) []string {
		return []string{
			"TEMPORAL_ADDRESS=" + proxy.addr,
			"TEMPORAL_NAMESPACE=default",
			"TEMPORAL_API_KEY=" + key,
			"TEMPORAL_TLS_CLIENT_CERT_PATH=" + client.cert,
			"TEMPORAL_TLS_CLIENT_KEY_PATH=" + client.key,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + pki.caFile,
			"TEMPORAL_TLS_SERVER_NAME=" + frontendName,
		}
	}

	t.Run("environment", func(t *testing.T) {
		s := newStack(t, sharedServer)
		devices := startFleet(t, "--devices", "20", "--version", "1.0.0", "--reboot", "100ms")
		startProc(t, tlsEnv(pki.client(t, "worker-env"), apiKey), "worker", "--task-queue", s.taskQueue)

		out, code := runBinaryEnv(t, tlsEnv(pki.client(t, "starter-env"), apiKey), "starter", "--task-queue", s.taskQueue,
			"start", "--id", "tls-env", "--inventory", devices.inventory(), "--firmware", image, "--version", "2.0.0", "--wait")
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "rollout tls-env completed")
		assert.Contains(t, out, "20 updated, 0 already current, 0 failed")
		requireEveryDeviceUpdatedOnce(t, devices, 20, "2.0.0")
		assert.Positive(t, proxy.callsFrom("worker-env", "PollWorkflowTaskQueue"), "the worker polled through the proxy with its certificate")
		assert.Equal(t, 1, proxy.callsFrom("starter-env", "StartWorkflowExecution"))
	})

	t.Run("flags", func(t *testing.T) {
		s := newStack(t, sharedServer)
		devices := startFleet(t, "--devices", "20", "--version", "1.0.0", "--reboot", "100ms")
		flags := func(client pemPair) []string {
			return []string{"--address", proxy.addr, "--namespace", "default", "--task-queue", s.taskQueue, "--tls",
				"--tls-cert", client.cert, "--tls-key", client.key, "--tls-ca", pki.caFile, "--tls-server-name", frontendName}
		}
		startProc(t, nil, "worker", append(flags(pki.client(t, "worker-flags")), "--api-key-file", apiKeyFile)...)

		args := append(flags(pki.client(t, "starter-flags")), "--api-key", apiKey,
			"start", "--id", "tls-flags", "--inventory", devices.inventory(), "--firmware", image, "--version", "2.0.0", "--wait")
		out, code := runBinaryEnv(t, nil, "starter", args...)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "rollout tls-flags completed")
		requireEveryDeviceUpdatedOnce(t, devices, 20, "2.0.0")
		assert.Positive(t, proxy.callsFrom("worker-flags", "PollWorkflowTaskQueue"))
		assert.Equal(t, 1, proxy.callsFrom("starter-flags", "StartWorkflowExecution"))

		// The status through the proxy reads the same report.
		out, code = runBinaryEnv(t, nil, "starter", append(flags(pki.client(t, "status-flags")), "--api-key", apiKey, "status", "tls-flags")...)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "20 updated")
	})

	t.Run("wrong API key", func(t *testing.T) {
		s := newStack(t, sharedServer)
		devices := startFleet(t, "--devices", "2", "--version", "1.0.0")
		wrongKey := "api-" + randomSecretHex(t, 16)
		out, code := runBinaryEnv(t, tlsEnv(pki.client(t, "starter-wrong-key"), wrongKey), "starter", "--task-queue", s.taskQueue,
			"start", "--id", "tls-wrong-key", "--inventory", devices.inventory(), "--firmware", image, "--version", "2.0.0")
		assert.Equal(t, 1, code, out)
		requireOneLineError(t, out)
		assert.Contains(t, out, "starter: cannot reach Temporal at "+proxy.addr+" (namespace default)")
		assert.Contains(t, out, "invalid API key")
		assert.NotContains(t, out, wrongKey, "the key is never printed")
		_, err := s.client.DescribeWorkflowExecution(context.Background(), "tls-wrong-key", "")
		var notFound *serviceerror.NotFound
		assert.ErrorAs(t, err, &notFound, "nothing started")

		out, code = runBinaryEnv(t, tlsEnv(pki.client(t, "worker-wrong-key"), wrongKey), "worker", "--task-queue", s.taskQueue)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "worker: cannot reach Temporal at "+proxy.addr)
		assert.Contains(t, out, "invalid API key")
		assert.NotContains(t, out, wrongKey)
	})

	t.Run("no client certificate", func(t *testing.T) {
		out, code := runBinaryEnv(t, []string{
			"TEMPORAL_ADDRESS=" + proxy.addr, "TEMPORAL_API_KEY=" + apiKey,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + pki.caFile, "TEMPORAL_TLS_SERVER_NAME=" + frontendName,
		}, "starter", "list")
		assert.Equal(t, 1, code, out)
		requireOneLineError(t, out)
		assert.Contains(t, out, "starter: cannot reach Temporal at "+proxy.addr)
		// Over TLS 1.3 the client learns of the refusal after the
		// handshake, as a "certificate required" alert or a broken pipe.
		assert.Contains(t, out, "TLS is on without a client certificate: if the server requires one (mTLS), give --tls-cert and --tls-key")
	})

	t.Run("client certificate from another CA", func(t *testing.T) {
		stranger := newFrontendPKI(t).client(t, "stranger")
		out, code := runBinaryEnv(t, tlsEnv(stranger, apiKey), "starter", "list")
		assert.Equal(t, 1, code, out)
		requireOneLineError(t, out)
		assert.Contains(t, out, "starter: cannot reach Temporal at "+proxy.addr)
		assert.Contains(t, out, "if the server requires mTLS, check that it trusts the CA that signed --tls-cert")
	})

	t.Run("server name", func(t *testing.T) {
		env := tlsEnv(pki.client(t, "starter-server-name"), apiKey)
		withoutName := env[:len(env)-1]
		out, code := runBinaryEnv(t, withoutName, "starter", "list")
		assert.Equal(t, 1, code, out)
		requireOneLineError(t, out)
		assert.Contains(t, out, "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs")

		out, code = runBinaryEnv(t, append(withoutName, "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true"), "starter", "list")
		assert.Equal(t, 0, code, out)

		// Without the CA, the chain is still checked.
		client := pki.client(t, "starter-no-ca")
		out, code = runBinaryEnv(t, []string{
			"TEMPORAL_ADDRESS=" + proxy.addr, "TEMPORAL_API_KEY=" + apiKey, "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true",
			"TEMPORAL_TLS_CLIENT_CERT_PATH=" + client.cert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + client.key,
		}, "starter", "list")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "x509: certificate signed by unknown authority")
	})

	t.Run("bad settings exit 2", func(t *testing.T) {
		client := pki.client(t, "bad-settings")
		missing := filepath.Join(pki.dir, "missing.pem")
		for _, bin := range []string{"worker", "starter"} {
			run := func(env []string, args ...string) (string, int) {
				if bin == "starter" {
					args = append(args, "list")
				}
				return runBinaryEnv(t, env, bin, append([]string{"--address", proxy.addr}, args...)...)
			}
			out, code := run(nil, "--tls-cert", client.cert)
			assert.Equal(t, 2, code, out)
			requireOneLineError(t, out)
			assert.Contains(t, out, bin+": --tls-cert ($TEMPORAL_TLS_CLIENT_CERT_PATH) needs --tls-key ($TEMPORAL_TLS_CLIENT_KEY_PATH)")

			out, code = run([]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + missing})
			assert.Equal(t, 2, code, out)
			requireOneLineError(t, out)
			assert.Contains(t, out, bin+": --tls-ca: open "+missing+": no such file or directory")
		}
	})
}
