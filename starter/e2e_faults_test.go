//go:build e2e

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// faultCase is one row of the fault matrix: a fault between the worker
// and three devices, and what the rollout must make of it. A chaos fault
// sits in a proxy of each device's own, so its counts (resets, stalls)
// and byte offsets are per device.
type faultCase struct {
	name    string
	chaos   *chaos      // through a chaos proxy, or nil for a devicemock fault
	fault   fleet.Fault // the devicemock fault of the devices, "" for clean ones
	updated bool        // expected outcome: updated, or failed with reason
	reason  string      // substring of the failure reason, or of the push's last failure when updated
	uploads int64       // uploads per device
	pushes  int32       // PushFirmware attempts per device

	imageSize   int    // bytes; 0: 1 MiB
	pushTimeout string // device.pushTimeout; "": the default
}

var faultMatrix = []faultCase{
	{name: "latency 300 ms each way", chaos: &chaos{latency: 300 * time.Millisecond}, updated: true, uploads: 1, pushes: 1},
	{name: "bandwidth 256 KiB/s", chaos: &chaos{bandwidth: 256 << 10}, updated: true, uploads: 1, pushes: 1},
	{name: "connection reset mid-stream", chaos: &chaos{resetAfter: 600 << 10, resets: 1}, updated: true, uploads: 2, pushes: 2, reason: "device unreachable"},
	// Bigger than the socket buffers between worker and proxy, so that the
	// worker's writes really block.
	{name: "half-open connection (stall mid-stream)", chaos: &chaos{stallAfter: 300 << 10, stalls: 1, stallFor: 20 * time.Second},
		imageSize: 64 << 20, updated: true, uploads: 2, pushes: 2, reason: "transfer stalled: no bytes moved for 3s"},
	// The device takes the whole image, its answer is lost: the attempt
	// ends at its start-to-close timeout, and the retry finds the device
	// on the new version instead of flashing it again.
	{name: "answer lost after the upload", chaos: &chaos{swallow: true, stalls: 1},
		pushTimeout: "8s", updated: true, uploads: 1, pushes: 2, reason: "StartToClose"},
	{name: "slow close 1 s", chaos: &chaos{slowClose: time.Second}, updated: true, uploads: 1, pushes: 1},
	{name: "checksum corrupted by the proxy", chaos: &chaos{corruptAt: 200 << 10}, reason: "422 Unprocessable Entity", uploads: 1, pushes: 1},
	{name: "5xx burst (503 twice)", fault: fleet.FaultFail5xx, updated: true, uploads: 3, pushes: 3, reason: "503 Service Unavailable"},
	{name: "429 with Retry-After 2", fault: fleet.FaultBusy, updated: true, uploads: 2, pushes: 2, reason: "429 Too Many Requests"},
	{name: "wrong version after reboot", fault: fleet.FaultWrongVersion, reason: "restarted on its previous version 1.0.0", uploads: 1, pushes: 1},
	{name: "offline (no answer)", fault: fleet.FaultOffline, reason: "device unreachable", uploads: 0, pushes: 4},
}

// Every fault of the matrix, end to end over the real server: a rollout
// of three devices per fault, all at once. Each device ends updated, or
// failed with the expected reason and its version known; the table of
// what happened is printed (the README quotes it).
func TestE2EFaultMatrix(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "42", "--version", "1.0.0", "--reboot", "1s", "--seed", "4",
		"--fail-5xx", "0.0715", "--fail-429", "0.0715", "--wrong-version", "0.0715", "--offline", "0.0715")
	s.startWorker()
	images := map[int]string{}

	byFault := map[fleet.Fault][]fleet.Device{}
	for _, d := range devices.inventoryDevices(t) {
		byFault[faultOf(t, devices, d.ID)] = append(byFault[faultOf(t, devices, d.ID)], d)
	}
	var wg sync.WaitGroup
	results := make([]faultResult, len(faultMatrix))
	for i, fc := range faultMatrix {
		group := byFault[fc.fault][:3]
		if fc.fault == "" {
			byFault[""] = byFault[""][3:]
		}
		hosts := map[string]string{}
		for _, d := range group {
			hosts[d.ID] = strings.TrimPrefix(devices.url, "http://")
			if fc.chaos != nil {
				hosts[d.ID] = startChaosProxy(t, hosts[d.ID], *fc.chaos).addr()
			}
		}
		size := cmp.Or(fc.imageSize, 1<<20)
		if images[size] == "" {
			images[size], _ = firmwareImage(t, size)
		}
		id := fmt.Sprintf("fault-%d", i)
		spec := writeSpec(t, workflows.Spec{
			ID:        id,
			Inventory: writeInventoryVia(t, group, hosts),
			Firmware:  workflows.Firmware{Version: "2.0.0", URL: images[size]},
			Device: workflows.DevicePolicy{
				PushTimeout:      fc.pushTimeout,
				HeartbeatTimeout: "3s",
				Retry:            workflows.RetrySpec{InitialInterval: "200ms", MaximumInterval: "1s", MaximumAttempts: 4},
			},
		})
		out, code := s.starter("start", "--spec", spec)
		require.Equal(t, 0, code, out)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.faultOutcome(id, group)
		}()
	}
	wg.Wait()

	st := map[string]fleet.DeviceStats{}
	for _, d := range devices.stats(t).Devices {
		st[d.ID] = d
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\toutcome\tuploads/device\tpush attempts\tseconds/device\treason")
	for i, fc := range faultMatrix {
		r := results[i]
		for _, d := range r.devices {
			assert.Equal(t, fc.updated, d.updated, "%s: %s", fc.name, d.id)
			assert.Equal(t, fc.uploads, st[d.id].Uploads, "%s: %s uploads", fc.name, d.id)
			assert.Equal(t, fc.pushes, d.attempts, "%s: %s push attempts", fc.name, d.id)
			wantVersion := "1.0.0"
			if fc.updated {
				wantVersion = "2.0.0"
			}
			assert.Equal(t, wantVersion, st[d.id].Version, "%s: %s ends in a known state", fc.name, d.id)
			assert.Contains(t, d.reason, fc.reason, "%s: %s", fc.name, d.id)
		}
		outcome := "updated"
		if !fc.updated {
			outcome = "failed"
		}
		d := r.devices[0]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%s\n", fc.name, outcome, st[d.id].Uploads, d.attempts, d.seconds, firstLine(d.reason))
	}
	require.NoError(t, tw.Flush())
}

type deviceOutcome struct {
	id       string
	updated  bool
	reason   string // the failure, or the push's last failed attempt
	attempts int32
	seconds  float64
}

type faultResult struct{ devices []deviceOutcome }

// faultOutcome waits for a rollout and reads each device's story from its
// DeviceUpdate history.
func (s *stack) faultOutcome(id string, group []fleet.Device) faultResult {
	var r faultResult
	ctx, cancel := context.WithTimeout(s.t.Context(), 4*time.Minute)
	defer cancel()
	var report workflows.Report
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &report); err != nil {
		s.t.Errorf("rollout %s: %v", id, err)
	}
	for _, d := range group {
		o := deviceOutcome{id: d.ID}
		var first, last time.Time
		events := s.client.GetWorkflowHistory(ctx, id+"/"+d.ID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for events.HasNext() {
			e, err := events.Next()
			if err != nil {
				break
			}
			if first.IsZero() {
				first = e.GetEventTime().AsTime()
			}
			last = e.GetEventTime().AsTime()
			if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
				o.attempts = a.GetAttempt()
				if f := a.GetLastFailure(); f != nil {
					o.reason = f.GetMessage()
				}
			}
			if c := e.GetWorkflowExecutionCompletedEventAttributes(); c != nil {
				o.updated = true
			}
			if f := e.GetWorkflowExecutionFailedEventAttributes(); f != nil {
				o.reason = f.GetFailure().GetMessage()
			}
		}
		o.seconds = last.Sub(first).Seconds()
		r.devices = append(r.devices, o)
	}
	return r
}

// inventoryDevices is devicemock's inventory.
func (f *fleetSim) inventoryDevices(t *testing.T) []fleet.Device {
	t.Helper()
	resp, err := httpGet(f.inventory())
	require.NoError(t, err)
	var devices []fleet.Device
	require.NoError(t, json.Unmarshal(resp, &devices))
	return devices
}

func faultOf(t *testing.T, f *fleetSim, id string) fleet.Fault {
	for _, d := range f.stats(t).Devices {
		if d.ID == id {
			return d.Fault
		}
	}
	return ""
}

// writeInventoryVia writes an inventory of the devices with their
// addresses on the host given for each (a chaos proxy in front of
// devicemock).
func writeInventoryVia(t *testing.T, devices []fleet.Device, hosts map[string]string) string {
	t.Helper()
	var out []fleet.Device
	for _, d := range devices {
		u, err := url.Parse(d.Address)
		require.NoError(t, err)
		u.Host = hosts[d.ID]
		d.Address = u.String()
		out = append(out, d)
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "inventory.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 90 {
		s = s[:90] + "..."
	}
	return s
}
