//go:build e2e

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/devicemock/testpki"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// testCerts are a CA made for one test, devicemock's server certificate
// and the worker's client certificate, written to files for the flags.
type testCerts struct {
	ca     *testpki.CA
	caFile string
	server testpki.Files
	worker testpki.Files
	// workerPair lets the test itself read /_fleet/stats under mTLS.
	workerPair *testpki.Pair
}

func newTestCerts(t *testing.T) *testCerts {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "e2e fleet CA")
	worker := ca.Client(t, "e2e worker")
	return &testCerts{
		ca:         ca,
		caFile:     ca.WriteFile(t, dir, "ca"),
		server:     ca.Server(t, "127.0.0.1", "localhost").WriteFiles(t, dir, "devicemock"),
		worker:     worker.WriteFiles(t, dir, "worker"),
		workerPair: worker,
	}
}

// startTLSFleet runs devicemock over HTTPS, requiring client certificates
// from the CA when mutual is set. The starter and the worker read its
// inventory from the file it writes (before its ready line), whose
// addresses are https://.
func startTLSFleet(t *testing.T, certs *testCerts, mutual bool, args ...string) (*fleetSim, string) {
	t.Helper()
	inventory := filepath.Join(t.TempDir(), "inventory.json")
	args = append(args, "--tls-cert", certs.server.Cert, "--tls-key", certs.server.Key, "--inventory-out", inventory)
	if mutual {
		args = append(args, "--client-ca", certs.caFile)
	}
	sim := startFleet(t, args...)
	require.True(t, strings.HasPrefix(sim.url, "https://127.0.0.1:"), sim.url)
	sim.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: certs.ca.Pool(), Certificates: []tls.Certificate{certs.workerPair.TLS},
	}}}
	return sim, inventory
}

// A rollout to devices that serve HTTPS and require the worker's client
// certificate: every device updated, installed once.
func TestE2EDeviceTLSMutualRollout(t *testing.T) {
	s := newStack(t, sharedServer)
	certs := newTestCerts(t)
	devices, inventory := startTLSFleet(t, certs, true, "--devices", "30", "--version", "1.0.0", "--reboot", "200ms")
	worker := s.startWorkerWith("--device-ca", certs.caFile, "--device-cert", certs.worker.Cert, "--device-key", certs.worker.Key)
	image, _ := firmwareImage(t, 256<<10)

	out, code := s.starter("start", "--id", "tls-30", "--inventory", inventory, "--firmware", image, "--version", "2.0.0", "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "30 updated, 0 already current, 0 failed")

	st := devices.stats(t)
	require.Len(t, st.Devices, 30)
	for _, d := range st.Devices {
		assert.Equal(t, "2.0.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
		assert.EqualValues(t, 1, d.Uploads, d.ID)
		assert.EqualValues(t, 256<<10, d.Bytes, d.ID)
	}
	var listed []fleet.Device
	data, err := os.ReadFile(inventory)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &listed))
	for _, d := range listed {
		require.True(t, strings.HasPrefix(d.Address, "https://"), "inventory address %s", d.Address)
	}
	assert.NotContains(t, worker.output(), "NOT verified")
	assert.Contains(t, worker.output(), "clientCertificate=true")
}

// Certificate problems fail every device at once with the reason, and no
// image reaches a device: a worker that does not trust the devices' CA,
// and one without the client certificate the devices require.
func TestE2EDeviceTLSRefusals(t *testing.T) {
	certs := newTestCerts(t)
	image, _ := firmwareImage(t, 64<<10)
	for _, tc := range []struct {
		name        string
		mutual      bool
		workerFlags []string
		reason      string
	}{
		{"untrusted-ca", false, nil, "probe: TLS: the device's certificate is not signed by a CA we trust (x509: certificate signed by unknown authority"},
		{"no-client-cert", true, []string{"--device-ca", certs.caFile}, "probe: TLS: the device refused our client certificate (tls: certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, sharedServer)
			devices, inventory := startTLSFleet(t, certs, tc.mutual, "--devices", "5", "--version", "1.0.0", "--reboot", "200ms")
			s.startWorkerWith(tc.workerFlags...)
			id := "tls-" + tc.name
			out, code := s.starter("start", "--id", id, "--inventory", inventory, "--firmware", image, "--version", "2.0.0", "--wait")
			require.Equal(t, 1, code, out)
			assert.Contains(t, out, "0 updated, 0 already current, 5 failed")
			for _, d := range devices.stats(t).Devices {
				assert.Contains(t, out, d.ID+"  "+tc.reason)
				assert.EqualValues(t, 0, d.Installs, d.ID)
				assert.EqualValues(t, 0, d.Uploads, "%s: no upload reached the device", d.ID)
				assert.Equal(t, "1.0.0", d.Version, d.ID)
			}

			out, code = s.starter("status", id, "--json")
			require.Equal(t, 1, code, out)
			var r workflows.Report
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			assert.Equal(t, workflows.Counts{Failed: 5}, r.Counts)
			require.Len(t, r.Failures, 5)
			for _, f := range r.Failures {
				assert.Contains(t, f.Reason, tc.reason)
				assert.NotContains(t, f.Reason, "(attempt", "%s: permanent, not retried to exhaustion", f.DeviceID)
			}
		})
	}
}

// --insecure-skip-verify alone is refused; with the testing flag it
// reaches devices no trusted CA vouches for, and says so loudly.
func TestE2EDeviceTLSInsecureSkipVerify(t *testing.T) {
	s := newStack(t, sharedServer)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refused, err := exec.CommandContext(ctx, filepath.Join(binDir, "worker"), append(s.connectionArgs(), "--insecure-skip-verify")...).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "output %s", refused)
	require.Equal(t, 2, exit.ExitCode(), "output %s", refused)
	require.Equal(t, "worker: --insecure-skip-verify turns off device certificate checks and is refused unless "+
		"--allow-insecure-for-testing says this is a test\n", string(refused))

	certs := newTestCerts(t)
	devices, inventory := startTLSFleet(t, certs, false, "--devices", "5", "--version", "1.0.0", "--reboot", "200ms")
	worker := s.startWorkerWith("--insecure-skip-verify", "--allow-insecure-for-testing")
	image, _ := firmwareImage(t, 64<<10)
	out, code := s.starter("start", "--id", "tls-insecure", "--inventory", inventory, "--firmware", image, "--version", "2.0.0", "--wait")
	require.Equal(t, 0, code, out)
	for _, d := range devices.stats(t).Devices {
		assert.EqualValues(t, 1, d.Installs, d.ID)
	}
	logs := worker.output()
	assert.Contains(t, logs, `level=WARN msg="--insecure-skip-verify: device certificates are NOT verified`)
	assert.Contains(t, logs, `level=WARN msg="device certificate NOT verified (--insecure-skip-verify)" subject="CN=127.0.0.1`,
		"a warning per connection, naming the certificate")
}
