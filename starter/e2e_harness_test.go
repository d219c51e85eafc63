//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// The end-to-end suite runs the product as a user does: a real Temporal
// dev server (bin/temporal), and worker, devicemock and starter built
// from this repository and run as subprocesses.

var (
	binDir       string // built binaries
	sharedServer *devServer
)

func TestMain(m *testing.M) {
	os.Exit(runE2E(m))
}

func runE2E(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rollout-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binDir = dir
	for _, name := range []string{"worker", "starter", "devicemock"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			return 1
		}
	}
	sharedServer, err = startDevServer(filepath.Join(dir, "shared.db"), "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = sharedServer.server.Stop() }()
	return m.Run()
}

// temporalCLI is the dev server binary; make e2e builds it into bin/.
func temporalCLI() (string, error) {
	path := os.Getenv("TEMPORAL_CLI_PATH")
	if path == "" {
		path = "../bin/temporal"
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("the e2e suite needs the Temporal CLI at %s: run it with `make e2e` (it builds bin/temporal)", path)
	}
	return filepath.Abs(path)
}

// devServer is a dev server with a database file, restartable on the
// same port and file.
type devServer struct {
	server   *testsuite.DevServer
	hostPort string
	dbFile   string
}

func startDevServer(dbFile, hostPort string, extraArgs ...string) (*devServer, error) {
	cli, err := temporalCLI()
	if err != nil {
		return nil, err
	}
	if hostPort == "" {
		hostPort = "127.0.0.1:" + freePort()
	}
	server, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{HostPort: hostPort, Namespace: "default"},
		DBFilename:    dbFile,
		LogLevel:      "error",
		ExtraArgs: append([]string{
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
			"--dynamic-config-value", "system.enableActivityEagerExecution=true",
			"--http-port", freePort(), "--metrics-port", freePort(),
		}, extraArgs...),
		SearchAttributes: temporal.NewSearchAttributes(
			workflows.RolloutIDAttr.ValueSet(""), workflows.FirmwareVersionAttr.ValueSet(""),
			workflows.DeviceIDAttr.ValueSet(""), workflows.RolloutStatusAttr.ValueSet(""),
		),
		Stdout: io.Discard,
		Stderr: io.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the dev server: %w", err)
	}
	return &devServer{server: server, hostPort: hostPort, dbFile: dbFile}, nil
}

// quietLogger keeps the SDK's own logs (and in-process workers') to
// warnings and errors.
var quietLogger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// proc is a subprocess whose output is kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start(), "starting %s", name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output (last 4 KB):\n%s", name, tail(p.output(), 4096))
		}
	})
	return p
}

// kill is kill -9: no goodbye, like a crashed machine.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stack is what one test runs against: a dev server, a task queue of its
// own, workers and a simulated fleet.
type stack struct {
	t         *testing.T
	server    *devServer
	taskQueue string
	client    client.Client
}

func newStack(t *testing.T, server *devServer) *stack {
	t.Helper()
	cl, err := client.Dial(client.Options{HostPort: server.hostPort, Logger: quietLogger})
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &stack{t: t, server: server, taskQueue: "e2e-" + strings.ToLower(t.Name()), client: cl}
}

func (s *stack) connectionArgs() []string {
	return []string{"--address", s.server.hostPort, "--task-queue", s.taskQueue}
}

func (s *stack) startWorker(env ...string) *proc {
	return startProc(s.t, env, "worker", s.connectionArgs()...)
}

// startWorkerWith starts a worker with extra flags.
func (s *stack) startWorkerWith(flags ...string) *proc {
	return startProc(s.t, nil, "worker", append(s.connectionArgs(), flags...)...)
}

// starter runs the starter to completion and returns its output and exit code.
func (s *stack) starter(args ...string) (string, int) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "starter"), append(s.connectionArgs(), args...)...)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return string(out), exit.ExitCode()
	}
	require.NoError(s.t, err)
	return string(out), 0
}

func (s *stack) startStarter(args ...string) *proc {
	return startProc(s.t, nil, "starter", append(s.connectionArgs(), args...)...)
}

// fleetSim is a running devicemock.
type fleetSim struct {
	proc   *proc
	url    string
	client *http.Client // for /_fleet/*; http.DefaultClient when nil
}

var devicemockLine = regexp.MustCompile(`devicemock: \d+ devices on (https?://\S+) `)

func startFleet(t *testing.T, args ...string) *fleetSim {
	t.Helper()
	p := startProc(t, nil, "devicemock", append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := devicemockLine.FindStringSubmatch(p.output()); m != nil {
			return &fleetSim{proc: p, url: m[1]}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("devicemock did not start: %s", p.output())
	return nil
}

func (f *fleetSim) inventory() string { return f.url + "/_fleet/inventory" }

func (f *fleetSim) stats(t *testing.T) fleet.Stats {
	t.Helper()
	client := f.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Get(f.url + "/_fleet/stats")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var st fleet.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firmwareImage writes a random image and returns its path and digest.
func firmwareImage(t *testing.T, size int) (string, string) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	path := filepath.Join(t.TempDir(), "firmware.bin")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

// writeSpec writes a rollout spec file for --spec or the temporal CLI.
func writeSpec(t *testing.T, spec workflows.Spec) string {
	t.Helper()
	b, err := json.MarshalIndent(spec, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// result waits for the rollout's result.
func (s *stack) result(id string, timeout time.Duration) workflows.Report {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r workflows.Report
	require.NoError(s.t, s.client.GetWorkflow(ctx, id, "").Get(ctx, &r))
	return r
}

// progress queries the rollout, or returns false when no worker answers.
func (s *stack) progress(id string) (workflows.Report, bool) {
	r, err := queryProgress(context.Background(), s.client, id)
	return r, err == nil
}

// deviceUpdates lists the DeviceUpdate workflows of a rollout by their
// search attribute, as the Web UI filter does.
func (s *stack) deviceUpdates(id string) map[string]string {
	s.t.Helper()
	statuses := map[string]string{}
	var token []byte
	for {
		resp, err := s.client.ListWorkflow(context.Background(), listRequest(
			fmt.Sprintf("WorkflowType = 'DeviceUpdate' AND RolloutID = '%s'", id), token))
		require.NoError(s.t, err)
		for _, e := range resp.GetExecutions() {
			statuses[e.GetExecution().GetWorkflowId()] = e.GetStatus().String()
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return statuses
		}
	}
}

// scanLines returns the lines of s.
func scanLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func listRequest(query string, token []byte) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000}
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	return io.ReadAll(resp.Body)
}
