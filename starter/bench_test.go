//go:build e2e

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// make bench runs this: one rollout on a fresh dev server, with real HTTP
// pushes to devicemock, measured end to end. It checks correctness (one
// install per device) and prints figures; it asserts no timing.
var (
	benchDevices     = flag.Int("bench.devices", 2000, "devices in the benchmark rollout")
	benchConcurrency = flag.Int("bench.concurrency", 200, "the rollout's maxConcurrent")
	benchImage       = flag.Int("bench.image", 64<<10, "firmware image bytes")
	benchReboot      = flag.Duration("bench.reboot", 100*time.Millisecond, "devicemock reboot time")
	benchWorkers     = flag.Int("bench.workers", 1, "worker processes")
	benchWorkerFlags = flag.String("bench.worker-flags", "", "extra worker flags, space separated")
	benchServerFlags = flag.String("bench.server-flags", "", "extra dev server flags, space separated")
	benchBaseline    = flag.Int("bench.baseline", 2000, "records of the batch sliding-window reference run first on the same server (0: none)")
)

func TestBenchRollout(t *testing.T) {
	server, err := startDevServer(filepath.Join(t.TempDir(), "bench.db"), "", strings.Fields(*benchServerFlags)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.server.Stop() })
	s := newStack(t, server)
	var baseline float64
	if *benchBaseline > 0 {
		baseline = s.runBaseline(*benchBaseline, *benchConcurrency)
	}
	devices := startFleet(t, "--devices", strconv.Itoa(*benchDevices), "--version", "1.0.0",
		"--reboot", benchReboot.String())
	var workers []*proc
	for range *benchWorkers {
		workers = append(workers, startProc(t, nil, "worker", append(s.connectionArgs(), strings.Fields(*benchWorkerFlags)...)...))
	}
	image, _ := firmwareImage(t, *benchImage)
	spec := writeSpec(t, workflows.Spec{
		ID:            "bench",
		Inventory:     devices.inventory(),
		Firmware:      workflows.Firmware{Version: "2.0.0", URL: image},
		MaxConcurrent: *benchConcurrency,
	})

	began := time.Now()
	out, code := s.starter("start", "--spec", spec, "--wait")
	elapsed := time.Since(began)
	require.Equal(t, 0, code, tail(out, 2000))
	for _, d := range devices.stats(t).Devices {
		require.EqualValues(t, 1, d.Installs, d.ID)
	}

	perDevice, maxChildEvents := s.deviceDurations("bench")
	require.Len(t, perDevice, *benchDevices)
	maxParentEvents, runs := s.runHistoryLengths("bench")
	var workerRSS int64
	for _, w := range workers {
		workerRSS = max(workerRSS, peakRSS(w.cmd.Process.Pid))
	}
	serverRSS := peakRSS(pidOf("--port " + strings.Split(server.hostPort, ":")[1]))

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "devices\tseconds\tdevices/s\tp50/device\tp99/device\tmax events (rollout run)\tmax events (device)\trollout runs\tworker peak RSS\tserver peak RSS\t")
	fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%s\t%s\t%d\t%d\t%d\t%d MB\t%d MB\t\n",
		*benchDevices, elapsed.Seconds(), float64(*benchDevices)/elapsed.Seconds(),
		percentile(perDevice, 50), percentile(perDevice, 99), maxParentEvents, maxChildEvents, runs,
		workerRSS>>20, serverRSS>>20)
	require.NoError(t, tw.Flush())
	fmt.Printf("(maxConcurrent %d, image %d bytes, reboot %s, %d worker(s) %s, server %s)\n",
		*benchConcurrency, *benchImage, *benchReboot, *benchWorkers, *benchWorkerFlags, *benchServerFlags)
	if baseline > 0 {
		fmt.Printf("reference, same server and run: batch sliding window over %d records with two no-op activities each, %.1f records/s; rollout/reference %.2f\n",
			*benchBaseline, baseline, float64(*benchDevices)/elapsed.Seconds()/baseline)
	}
}

// deviceDurations reads every DeviceUpdate of a rollout from visibility:
// how long each took and the longest history.
func (s *stack) deviceDurations(id string) ([]time.Duration, int64) {
	var durations []time.Duration
	var maxEvents int64
	var token []byte
	for {
		resp, err := s.client.ListWorkflow(s.t.Context(), listRequest(
			fmt.Sprintf("WorkflowType = 'DeviceUpdate' AND RolloutID = '%s'", id), token))
		require.NoError(s.t, err)
		for _, e := range resp.GetExecutions() {
			durations = append(durations, e.GetCloseTime().AsTime().Sub(e.GetStartTime().AsTime()))
			maxEvents = max(maxEvents, e.GetHistoryLength())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return durations, maxEvents
		}
	}
}

// runHistoryLengths is the longest history of a rollout's runs and their
// number.
func (s *stack) runHistoryLengths(id string) (int64, int) {
	resp, err := s.client.ListWorkflow(s.t.Context(), listRequest(fmt.Sprintf("WorkflowId = '%s'", id), nil))
	require.NoError(s.t, err)
	var longest int64
	for _, e := range resp.GetExecutions() {
		longest = max(longest, e.GetHistoryLength())
	}
	return longest, len(resp.GetExecutions())
}

func percentile(ds []time.Duration, p int) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(time.Millisecond)
}

// peakRSS is a process's high-water resident set size, in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pidOf finds the process whose command line contains the text (the dev
// server is started by the SDK's test suite, which keeps its PID).
func pidOf(text string) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), text) {
			return pid
		}
	}
	return 0
}

// make bench-push: the push path against a plain `curl --data-binary`
// to the same devicemock endpoint, alternating, in one run.
var benchPushImage = flag.Int("bench.push-image", 256<<20, "image bytes for the push-vs-curl comparison")

func TestBenchPushVsCurl(t *testing.T) {
	const rounds = 5
	devices := startFleet(t, "--devices", strconv.Itoa(2*rounds), "--version", "1.0.0", "--reboot", "10ms")
	image, sum := firmwareImage(t, *benchPushImage)
	acts := &activities.Activities{Client: activities.NewHTTPClient(nil)}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts.Register(env)

	var pushes, curls []time.Duration
	for i := range rounds {
		curlDevice := fmt.Sprintf("%s/devices/dev-%05d", devices.url, 2*i+1)
		began := time.Now()
		out, err := execOutput("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
			"-H", "Content-Type: application/octet-stream", "-H", "X-Firmware-Version: 2.0.0",
			"-H", "X-Firmware-SHA256: "+sum, "--data-binary", "@"+image, curlDevice+"/update")
		curls = append(curls, time.Since(began))
		require.NoError(t, err, out)
		require.Equal(t, "202", out)

		began = time.Now()
		_, err = env.ExecuteActivity(workflows.PushFirmwareActivity, workflows.PushRequest{
			RolloutID: "bench", DeviceID: fmt.Sprintf("dev-%05d", 2*i+2),
			Address:  fmt.Sprintf("%s/devices/dev-%05d", devices.url, 2*i+2),
			Firmware: workflows.Firmware{Version: "2.0.0", URL: "file://" + image, SHA256: sum, Size: int64(*benchPushImage)},
		})
		pushes = append(pushes, time.Since(began))
		require.NoError(t, err)
	}
	waitFor(t, 5*time.Second, "every device installed", func() bool {
		return devices.stats(t).Totals.Installs == 2*rounds
	})
	mbps := func(d time.Duration) float64 { return float64(*benchPushImage) / d.Seconds() / 1e6 }
	curl, push := percentile(curls, 50), percentile(pushes, 50)
	fmt.Printf("push %d MB, median of %d: PushFirmware %.0f MB/s, curl --data-binary %.0f MB/s, ratio %.2f\n",
		*benchPushImage>>20, rounds, mbps(push), mbps(curl), curl.Seconds()/push.Seconds())
}
