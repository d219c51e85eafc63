//go:build e2e

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// The device token stays in the worker: rollouts that use it (read from
// $DEVICE_TOKEN, and from --device-token-file), with devices that answer
// 503 before they take the image, and one with a wrong token that every
// device refuses with 401. Every history of each rollout (each run of the
// FirmwareRollout, each DeviceUpdate, anything else carrying its
// RolloutID) and every line the worker, the starter and devicemock wrote
// are searched for the tokens, plain and base64-encoded.
func TestE2ESecretsStayOutOfHistories(t *testing.T) {
	image, _ := firmwareImage(t, 64<<10)
	const devices = 100
	for _, tc := range []struct {
		name        string
		fleetToken  string
		workerToken string
		viaFile     bool
	}{
		{name: "env", fleetToken: newSecret(t)},
		{name: "file", fleetToken: newSecret(t), viaFile: true},
		{name: "wrong", fleetToken: newSecret(t), workerToken: newSecret(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.workerToken == "" {
				tc.workerToken = tc.fleetToken
			}
			secrets := []string{tc.fleetToken, tc.workerToken}
			s := newStack(t, sharedServer)
			sim := startFleet(t, "--devices", fmt.Sprint(devices), "--version", "1.0.0", "--reboot", "100ms",
				"--token", tc.fleetToken, "--fail-5xx", "0.2", "--seed", "11")
			var worker *proc
			if tc.viaFile {
				tokenFile := filepath.Join(t.TempDir(), "device-token")
				require.NoError(t, os.WriteFile(tokenFile, []byte(tc.workerToken+"\n"), 0o600))
				worker = s.startWorkerWith("--device-token-file", tokenFile)
			} else {
				worker = s.startWorker("DEVICE_TOKEN=" + tc.workerToken)
			}
			id := "secrets-" + tc.name
			spec := writeSpec(t, workflows.Spec{
				ID:               id,
				Inventory:        sim.inventory(),
				Firmware:         workflows.Firmware{Version: "2.0.0", URL: image},
				MaxConcurrent:    20,
				MaxHistoryEvents: workflows.MinMaxHistoryEvents,
				Device:           workflows.DevicePolicy{Retry: workflows.RetrySpec{InitialInterval: "100ms"}},
			})

			var starterOutput strings.Builder
			out, code := s.starter("start", "--spec", spec, "--wait")
			starterOutput.WriteString(out)
			r := s.result(id, 2*time.Minute)
			require.Greater(t, r.Runs, 1, "the rollout continued as new, so there are several runs to search")
			for _, args := range [][]string{{"status", id}, {"status", id, "--json"}, {"list"}} {
				out, _ := s.starter(args...)
				starterOutput.WriteString(out)
			}

			// The rollout really used the token: refused with 401 when wrong,
			// otherwise every device updated, some after 503s.
			stats := sim.stats(t)
			var flaky int
			if tc.workerToken != tc.fleetToken {
				require.Equal(t, 1, code, starterOutput.String())
				assert.Equal(t, workflows.Counts{Failed: devices}, r.Counts)
				for _, f := range r.Failures {
					assert.Contains(t, f.Reason, "push: device answered 401 Unauthorized", f.DeviceID)
				}
				for _, d := range stats.Devices {
					assert.EqualValues(t, 0, d.Installs, d.ID)
					assert.EqualValues(t, 1, d.Uploads, "%s: a 401 costs one attempt", d.ID)
				}
			} else {
				require.Equal(t, 0, code, starterOutput.String())
				assert.Equal(t, workflows.Counts{Succeeded: devices}, r.Counts)
				for _, d := range stats.Devices {
					assert.Equal(t, "2.0.0", d.Version, d.ID)
					assert.EqualValues(t, 1, d.Installs, d.ID)
					if d.Fault == fleet.FaultFail5xx {
						flaky++
						assert.EqualValues(t, 3, d.Uploads, "%s: two 503s, then the token was taken", d.ID)
					}
				}
				require.Equal(t, devices/5, flaky)
			}

			histories := s.rolloutHistories(id, devices, r.Runs)
			all := bytes.Join(histories, []byte("\n"))
			// The search sees what the devices answered (failure messages are
			// plain JSON strings) and the workflows' inputs (base64 payloads).
			refusal := "503 Service Unavailable"
			if tc.workerToken != tc.fleetToken {
				refusal = "401 Unauthorized"
			}
			require.True(t, bytes.Contains(all, []byte("push: device answered "+refusal)), "the histories hold no %s", refusal)
			require.True(t, strings.Contains(decodedText(t, all), `{"rolloutId":"`+id+`","deviceId":"dev-00001"`),
				"the payloads decode: the DeviceUpdate input of dev-00001 is among them")
			for _, h := range histories {
				requireNoSecret(t, "a workflow history", h, secrets, true)
			}
			requireNoSecret(t, "the worker's output", []byte(worker.output()), secrets, false)
			requireNoSecret(t, "the starter's output", []byte(starterOutput.String()), secrets, false)
			requireNoSecret(t, "devicemock's output", []byte(sim.proc.output()), secrets, false)
		})
	}
}

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "tok" + hex.EncodeToString(b)
}

// rolloutHistories returns every history of the rollout as JSON, once
// visibility lists all its runs and device updates as closed: the runs of
// the FirmwareRollout with `temporal workflow show --output json`, the
// rest through the SDK, in the same JSON format.
func (s *stack) rolloutHistories(id string, devices, runs int) [][]byte {
	s.t.Helper()
	query := fmt.Sprintf("RolloutID = '%s' OR WorkflowId = '%s'", id, id)
	type execution struct{ workflowID, runID, workflowType string }
	var found []execution
	waitFor(s.t, time.Minute, "visibility to list every run and device update, closed", func() bool {
		found = nil
		rolloutRuns, updates := 0, 0
		var token []byte
		for {
			resp, err := s.client.ListWorkflow(context.Background(), listRequest(query, token))
			require.NoError(s.t, err)
			for _, e := range resp.GetExecutions() {
				if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					return false
				}
				found = append(found, execution{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetType().GetName()})
				switch e.GetType().GetName() {
				case workflows.FirmwareRolloutWorkflow:
					rolloutRuns++
				case workflows.DeviceUpdateWorkflow:
					updates++
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				return rolloutRuns == runs && updates == devices
			}
		}
	})

	cli, err := temporalCLI()
	require.NoError(s.t, err)
	var histories [][]byte
	for _, e := range found {
		if e.workflowType == workflows.FirmwareRolloutWorkflow {
			cmd := exec.Command(cli, "workflow", "show", "--workflow-id", e.workflowID, "--run-id", e.runID,
				"--output", "json", "--address", s.server.hostPort)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(s.t, err, "temporal workflow show %s: %s", e.workflowID, stderr.String())
			histories = append(histories, out)
			continue
		}
		var events []*historypb.HistoryEvent
		iter := s.client.GetWorkflowHistory(context.Background(), e.workflowID, e.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			event, err := iter.Next()
			require.NoError(s.t, err, e.workflowID)
			events = append(events, event)
		}
		out, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(&historypb.History{Events: events})
		require.NoError(s.t, err)
		histories = append(histories, out)
	}
	require.Len(s.t, histories, runs+devices)
	return histories
}

// requireNoSecret fails if text holds any secret, plain or in base64 (at
// any alignment, either alphabet); for JSON, also inside every string
// that decodes as base64 (payloads are base64 in history JSON).
func requireNoSecret(t *testing.T, where string, text []byte, secrets []string, isJSON bool) {
	t.Helper()
	for _, secret := range secrets {
		for _, form := range secretForms(secret) {
			if i := bytes.Index(text, []byte(form)); i >= 0 {
				t.Fatalf("%s holds a device token (as %q): ...%s...", where, form, text[max(0, i-200):min(len(text), i+200)])
			}
		}
	}
	if !isJSON {
		return
	}
	decoded := decodedText(t, text)
	for _, secret := range secrets {
		for _, form := range secretForms(secret) {
			if i := strings.Index(decoded, form); i >= 0 {
				t.Fatalf("%s holds a device token (as %q) in a base64 payload: ...%q...", where, form, decoded[max(0, i-200):min(len(decoded), i+200)])
			}
		}
	}
}

// secretForms are secret and the base64 text that carries it wherever it
// sits in a longer encoded value: at each of the three alignments, only
// the characters that depend on the secret's bits alone.
func secretForms(secret string) []string {
	forms := []string{secret}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for shift := range 3 {
			encoded := enc.EncodeToString(append(make([]byte, shift), secret...))
			from, to := (8*shift+5)/6, 8*(shift+len(secret))/6
			forms = append(forms, encoded[from:to])
		}
	}
	return forms
}

// decodedText is every string in the JSON documents of text that decodes
// as base64, decoded, one per line, recursively for decoded JSON.
func decodedText(t *testing.T, text []byte) string {
	t.Helper()
	var out strings.Builder
	dec := json.NewDecoder(bytes.NewReader(text))
	for {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			require.ErrorIs(t, err, io.EOF, "history JSON")
			return out.String()
		}
		decodeStrings(doc, &out, 0)
	}
}

func decodeStrings(v any, out *strings.Builder, depth int) {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			decodeStrings(e, out, depth)
		}
	case []any:
		for _, e := range v {
			decodeStrings(e, out, depth)
		}
	case string:
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			return
		}
		out.Write(raw)
		out.WriteByte('\n')
		var inner any
		if depth < 3 && json.Unmarshal(raw, &inner) == nil {
			decodeStrings(inner, out, depth+1)
		}
	}
}
