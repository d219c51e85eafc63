package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/testpki"
)

// parseDeviceTLS runs loadDeviceTLS on the command line args.
func parseDeviceTLS(t *testing.T, logs io.Writer, args ...string) (deviceTLS, error) {
	t.Helper()
	var got deviceTLS
	var loadErr error
	app := &cli.App{Flags: deviceTLSFlags(), Action: func(c *cli.Context) error {
		got, loadErr = loadDeviceTLS(c, slog.New(slog.NewTextHandler(logs, nil)))
		return nil
	}}
	require.NoError(t, app.Run(append([]string{"worker"}, args...)))
	return got, loadErr
}

func TestDeviceTLSFlagsRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "fleet CA")
	client := ca.Client(t, "worker").WriteFiles(t, dir, "worker")
	other := ca.Client(t, "other").WriteFiles(t, dir, "other")
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello\n"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"cert without key":      {[]string{"--device-cert", client.Cert}, "--device-cert and --device-key go together: give both or neither"},
		"key without cert":      {[]string{"--device-key", client.Key}, "--device-cert and --device-key go together"},
		"skip verify alone":     {[]string{"--insecure-skip-verify"}, "--insecure-skip-verify turns off device certificate checks and is refused unless --allow-insecure-for-testing says this is a test"},
		"testing flag alone":    {[]string{"--allow-insecure-for-testing"}, "--allow-insecure-for-testing only goes with --insecure-skip-verify"},
		"CA missing":            {[]string{"--device-ca", missing}, "--device-ca: " + missing + ": no such file or directory"},
		"CA not PEM":            {[]string{"--device-ca", notPEM}, "--device-ca: " + notPEM + " holds no PEM certificate"},
		"cert missing":          {[]string{"--device-cert", missing, "--device-key", client.Key}, "--device-cert/--device-key: " + missing + ": no such file"},
		"key of another cert":   {[]string{"--device-cert", client.Cert, "--device-key", other.Key}, "--device-cert/--device-key: tls: private key does not match public key"},
		"certificate not PEM":   {[]string{"--device-cert", notPEM, "--device-key", client.Key}, "--device-cert/--device-key: tls: failed to find any PEM data"},
		"key file is the cert":  {[]string{"--device-cert", client.Cert, "--device-key", client.Cert}, "--device-cert/--device-key: tls:"},
		"CA file is a key only": {[]string{"--device-ca", client.Key}, "holds no PEM certificate"},
	} {
		var logs bytes.Buffer
		_, err := parseDeviceTLS(t, &logs, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", name, err, tc.want)
		}
	}
}

// The configuration the flags load reaches a device that requires mTLS,
// and a firmware server with the same CA; without flags, plain defaults.
func TestDeviceTLSFlagsLoadCAAndClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "fleet CA")
	client := ca.Client(t, "worker").WriteFiles(t, dir, "worker")
	device := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	device.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	device.StartTLS()
	t.Cleanup(device.Close)

	var logs bytes.Buffer
	cfg, err := parseDeviceTLS(t, &logs, "--device-ca", ca.WriteFile(t, dir, "ca"), "--device-cert", client.Cert, "--device-key", client.Key)
	require.NoError(t, err)
	for name, c := range map[string]*http.Client{
		"devices": activities.NewHTTPClient(cfg.devices),
		"sources": activities.NewSourceClient(cfg.sources),
	} {
		resp, err := c.Get(device.URL)
		require.NoError(t, err, name)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, "worker", string(body), "%s: the device saw our client certificate", name)
	}
	require.NotContains(t, logs.String(), "WARN")
	require.Contains(t, logs.String(), "clientCertificate=true")

	cfg, err = parseDeviceTLS(t, &logs)
	require.NoError(t, err)
	require.Nil(t, cfg.devices.RootCAs, "system roots")
	require.Nil(t, cfg.devices.GetClientCertificate)
	require.False(t, cfg.devices.InsecureSkipVerify)
	require.Equal(t, uint16(tls.VersionTLS12), cfg.devices.MinVersion)
}

// --insecure-skip-verify with its testing flag connects to a device no CA
// vouches for, and says so at start and on every connection.
func TestInsecureSkipVerifyIsLoud(t *testing.T) {
	device := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	device.Config.ErrorLog = log.New(io.Discard, "", 0)
	device.StartTLS()
	t.Cleanup(device.Close)

	var logs bytes.Buffer
	cfg, err := parseDeviceTLS(t, &logs, "--insecure-skip-verify", "--allow-insecure-for-testing")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	require.Contains(t, logs.String(), "device certificates are NOT verified")

	for range 2 {
		// A fresh client each time: a fresh connection each time.
		resp, err := activities.NewHTTPClient(cfg.devices).Get(device.URL)
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	require.Equal(t, 3, strings.Count(logs.String(), "level=WARN"), "one warning per connection:\n%s", logs.String())
	require.Contains(t, logs.String(), `msg="device certificate NOT verified (--insecure-skip-verify)" subject="O=Acme Co"`,
		"the warning names the certificate (httptest's own)")

	// Sources are still verified.
	_, err = activities.NewSourceClient(cfg.sources).Get(device.URL)
	require.ErrorContains(t, err, "certificate signed by unknown authority")
}
