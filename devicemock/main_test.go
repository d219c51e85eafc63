package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
)

func TestRunRejectsBadInput(t *testing.T) {
	badFleet := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(badFleet, []byte(`[{"id": "a"}, {"id": "a"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown flag":        {[]string{"--nope"}, "unknown flag --nope"},
		"bad number":          {[]string{"--devices", "many"}, `invalid value "many" for flag --devices`},
		"bad duration":        {[]string{"--reboot", "5"}, `invalid value "5" for flag --reboot`},
		"no devices":          {[]string{"--devices", "0"}, "--devices must be at least 1"},
		"rate out of range":   {[]string{"--fail-5xx", "1.5"}, "--fail-5xx must be between 0 and 1"},
		"rates above 1":       {[]string{"--offline", "0.6", "--drop", "0.6"}, "must add up to at most 1"},
		"negative bandwidth":  {[]string{"--bandwidth", "-1"}, "--bandwidth must not be negative"},
		"unreadable fleet":    {[]string{"--fleet", "/does/not/exist.json"}, "--fleet: /does/not/exist.json: no such file or directory"},
		"invalid fleet":       {[]string{"--fleet", badFleet}, `duplicate id "a"`},
		"fleet with devices":  {[]string{"--fleet", badFleet, "--devices", "3"}, "--devices cannot be combined with --fleet"},
		"listen without port": {[]string{"--listen", "localhost"}, `--listen "localhost"`},
		"stray argument":      {[]string{"serve"}, `unexpected argument "serve"`},
		"missing public key":  {[]string{"--firmware-public-key", "/does/not/exist.pub"}, "--firmware-public-key: open /does/not/exist.pub: no such file or directory"},
		"not a public key":    {[]string{"--firmware-public-key", badFleet}, "--firmware-public-key: " + badFleet + ": no PEM block"},
	} {
		var stdout, stderr strings.Builder
		code := run(context.Background(), append([]string{"devicemock", "--listen", "127.0.0.1:0"}, tc.args...), &stdout, &stderr)
		msg := stderr.String()
		if code != exitUsage || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 and one stderr line containing %q", name, code, msg, stdout.String(), tc.want)
		}
	}
}

func TestRunNeverPrintsTheToken(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"devicemock", "--token", "s3cret-token", "--drop", "7"}, &stdout, &stderr)
	if code != exitUsage || strings.Contains(stderr.String()+stdout.String(), "s3cret-token") {
		t.Errorf("exit %d, output %q%q: want exit 2 without the token", code, stdout.String(), stderr.String())
	}
}

func TestRunFailsWhenThePortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"devicemock", "--listen", ln.Addr().String()}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "--listen "+ln.Addr().String()) {
		t.Errorf("exit %d, stderr %q: want exit 1 naming --listen", code, stderr.String())
	}
}

var readyLine = regexp.MustCompile(`^devicemock: (\d+) devices on (http://\S+) \(inventory (\S+)\)\n$`)

func TestRunServesUntilCancelled(t *testing.T) {
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr strings.Builder
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"devicemock", "--listen", "127.0.0.1:0", "--devices", "3", "--version", "9.9",
			"--inventory-out", invPath}, stdoutW, &stderr)
		stdoutW.Close()
	}()

	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the ready line: %v (stderr %q)", err, stderr.String())
	}
	m := readyLine.FindStringSubmatch(line)
	if m == nil || m[1] != "3" || m[3] != m[2]+"/_fleet/inventory" {
		t.Fatalf("ready line %q does not match %v", line, readyLine)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	base := m[2]

	var served []fleet.Device
	resp, err := http.Get(m[3])
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&served)
	resp.Body.Close()
	if err != nil || len(served) != 3 || served[2].Address != base+"/devices/dev-00003" || served[2].FirmwareVersion != "9.9" {
		t.Fatalf("served inventory %+v (err %v), want 3 devices on 9.9 under %s", served, err, base)
	}

	data, err := os.ReadFile(invPath)
	if err != nil {
		t.Fatal(err)
	}
	var written []fleet.Device
	if err := json.Unmarshal(data, &written); err != nil || len(written) != 3 || written[0].Address != base+"/devices/dev-00001" {
		t.Fatalf("--inventory-out file %s (err %v), want 3 devices under %s", data, err, base)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 || stderr.Len() != 0 {
			t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("devicemock did not shut down")
	}
	if _, err := http.Get(base + "/devices/dev-00001/health"); err == nil {
		t.Error("still serving after shutdown")
	}
}
