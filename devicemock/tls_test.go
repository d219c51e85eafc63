package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/devicemock/testpki"
)

func TestRunRejectsBadTLSInput(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "devicemock test CA")
	server := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	other := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "other")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"cert without key":     {[]string{"--tls-cert", server.Cert}, "--tls-cert and --tls-key go together"},
		"key without cert":     {[]string{"--tls-key", server.Key}, "--tls-cert and --tls-key go together"},
		"client CA over HTTP":  {[]string{"--client-ca", ca.WriteFile(t, dir, "ca")}, "--client-ca needs --tls-cert and --tls-key"},
		"missing cert":         {[]string{"--tls-cert", filepath.Join(dir, "none.crt"), "--tls-key", server.Key}, "--tls-cert/--tls-key: " + filepath.Join(dir, "none.crt") + ": no such file"},
		"key of another cert":  {[]string{"--tls-cert", server.Cert, "--tls-key", other.Key}, "--tls-cert/--tls-key: tls: private key does not match public key"},
		"cert not PEM":         {[]string{"--tls-cert", notPEM, "--tls-key", server.Key}, "--tls-cert/--tls-key: tls: failed to find any PEM data"},
		"client CA not PEM":    {[]string{"--tls-cert", server.Cert, "--tls-key", server.Key, "--client-ca", notPEM}, "--client-ca: " + notPEM + " holds no PEM certificate"},
		"client CA missing":    {[]string{"--tls-cert", server.Cert, "--tls-key", server.Key, "--client-ca", filepath.Join(dir, "none")}, "--client-ca: " + filepath.Join(dir, "none") + ": no such file"},
		"max image zero":       {[]string{"--max-image", "0"}, "--max-image must be at least 1 byte"},
		"max image not number": {[]string{"--max-image", "4G"}, `invalid value "4G" for flag --max-image`},
	} {
		var stdout, stderr strings.Builder
		code := run(context.Background(), append([]string{"devicemock", "--listen", "127.0.0.1:0"}, tc.args...), &stdout, &stderr)
		msg := stderr.String()
		if code != exitUsage || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 and one stderr line containing %q", name, code, msg, stdout.String(), tc.want)
		}
	}
}

var servingLine = regexp.MustCompile(`^devicemock: \d+ devices on (https?://\S+) `)

// startRun runs devicemock with args until the test ends and returns the
// base URL its ready line names.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	var stderr strings.Builder
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, append([]string{"devicemock", "--listen", "127.0.0.1:0"}, args...), stdoutW, &stderr)
		stdoutW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("devicemock exited %d: %s", code, stderr.String())
		}
	})
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the ready line: %v (stderr %q)", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	m := servingLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q does not match %v", line, servingLine)
	}
	return m[1]
}

func clientWith(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func TestRunServesHTTPSAndRequiresClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "devicemock test CA")
	server := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	client := ca.Client(t, "worker")
	base := startRun(t, "--devices", "2", "--tls-cert", server.Cert, "--tls-key", server.Key, "--client-ca", ca.WriteFile(t, dir, "ca"))
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("serving on %s, want https://127.0.0.1:PORT", base)
	}

	trusted := clientWith(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}})
	resp, err := trusted.Get(base + "/_fleet/inventory")
	if err != nil {
		t.Fatalf("GET inventory with a client certificate: %v", err)
	}
	var devices []fleet.Device
	err = json.NewDecoder(resp.Body).Decode(&devices)
	resp.Body.Close()
	if err != nil || len(devices) != 2 || devices[1].Address != base+"/devices/dev-00002" {
		t.Fatalf("inventory %+v (err %v), want 2 devices under %s", devices, err, base)
	}

	// Without a client certificate, or with one from another CA, the
	// handshake is refused: no request reaches a device.
	stranger := testpki.NewCA(t, "another CA").Client(t, "intruder")
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":         {RootCAs: ca.Pool()},
		"client certificate of another": {RootCAs: ca.Pool(), Certificates: []tls.Certificate{stranger.TLS}},
	} {
		resp, err := clientWith(cfg).Get(base + "/devices/dev-00001/version")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: answered %s, want the handshake refused", name, resp.Status)
			continue
		}
		if !strings.Contains(err.Error(), "remote error: tls:") {
			t.Errorf("%s: %v, want a TLS alert from devicemock", name, err)
		}
	}

	// A client that does not trust devicemock's CA refuses it.
	_, err = clientWith(&tls.Config{Certificates: []tls.Certificate{client.TLS}}).Get(base + "/_fleet/stats")
	var unknown *tls.CertificateVerificationError
	if !errors.As(err, &unknown) {
		t.Errorf("GET with system roots: %v, want a certificate verification error", err)
	}
}

func TestRunLimitsRequests(t *testing.T) {
	base := startRun(t, "--devices", "1", "--max-image", "1000")

	req, err := http.NewRequest(http.MethodGet, base+"/devices/dev-00001/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("x", 2*maxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("request with %d header bytes: %s, want 431", 2*maxHeaderBytes, resp.Status)
	}

	req, err = http.NewRequest(http.MethodPost, base+"/devices/dev-00001/update", bytes.NewReader(make([]byte, 1001)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", strings.Repeat("ab", 32))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "1000 bytes") {
		t.Errorf("upload of 1001 bytes with --max-image 1000: %s %s, want 413 naming the limit", resp.Status, body)
	}
}
