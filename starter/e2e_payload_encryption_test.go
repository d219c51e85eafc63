//go:build e2e

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/worker/codec"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// With ROLLOUT_CODEC_KEY on the worker and the starter, a rollout runs as
// usual and the starter shows its report, but the server holds only
// ciphertext: every payload of every history is encrypted, and neither
// the firmware URL, its digest, the inventory, the device addresses, the
// device IDs nor the failure reasons appear in plaintext. The worker's
// codec endpoint decrypts a payload from that history for a caller with
// its token, and for the stock temporal CLI, and refuses anyone else.
func TestE2EPayloadEncryption(t *testing.T) {
	s := newStack(t, sharedServer)
	devices := startFleet(t, "--devices", "20", "--version", "1.0.0", "--reboot", "100ms", "--fail-4xx", "0.1", "--seed", "4")
	key := randomSecretBytes(t, codec.KeySize)
	keyEnv := "ROLLOUT_CODEC_KEY=" + base64.StdEncoding.EncodeToString(key)
	token := randomSecretHex(t, 24)
	pki := newFrontendPKI(t)
	endpointCert := pki.issue(t, "codec-endpoint", x509.ExtKeyUsageServerAuth, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	endpoint := "https://127.0.0.1:" + freePort()
	startProc(t, []string{keyEnv, "ROLLOUT_CODEC_AUTH_TOKEN=" + token}, "worker", append(s.connectionArgs(),
		"--codec-listen", strings.TrimPrefix(endpoint, "https://"), "--codec-cors-origin", "http://127.0.0.1:8233",
		"--codec-tls-cert", endpointCert.cert, "--codec-tls-key", endpointCert.key)...)
	image, digest := firmwareImage(t, 32<<10)

	out, code := runBinaryEnv(t, []string{keyEnv}, "starter", append(s.connectionArgs(), "start", "--id", "encrypted",
		"--inventory", devices.inventory(), "--firmware", image, "--version", "2.0.0", "--wait")...)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "18 updated, 0 already current, 2 failed")
	var deviceIDs []string
	for _, d := range devices.stats(t).Devices {
		deviceIDs = append(deviceIDs, d.ID)
		if d.Fault == fleet.FaultFail4xx {
			assert.EqualValues(t, 0, d.Installs, d.ID)
			assert.Contains(t, out, d.ID+"  push: device answered 403 Forbidden", "the starter decrypts the failures")
		} else {
			assert.Equal(t, "2.0.0", d.Version, d.ID)
			assert.EqualValues(t, 1, d.Installs, d.ID)
		}
	}

	out, code = runBinaryEnv(t, []string{keyEnv}, "starter", append(s.connectionArgs(), "status", "encrypted", "--json")...)
	require.Equal(t, 1, code, out)
	var report workflows.Report
	require.NoError(t, json.Unmarshal([]byte(out), &report), out)
	assert.Equal(t, workflows.Counts{Succeeded: 18, Failed: 2}, report.Counts)
	require.Len(t, report.Failures, 2)
	assert.Contains(t, report.Failures[0].Reason, "403 Forbidden")

	// The server's copy, read by a client without the codec.
	histories := s.storedHistories("encrypted", 21)
	plaintext := []string{image, digest, devices.inventory(), devices.url, "403 Forbidden"}
	encrypted := 0
	var rolloutInput *commonpb.Payloads
	for run, events := range histories {
		for _, event := range events {
			raw, err := protojson.Marshal(event)
			require.NoError(t, err)
			for _, secret := range plaintext {
				require.NotContains(t, string(raw), secret, "%s event %d", run, event.GetEventId())
			}
			eachStoredPayload(event.ProtoReflect(), func(p *commonpb.Payload) {
				encrypted++
				require.Equal(t, codec.EncodingEncrypted, string(p.GetMetadata()[codec.MetadataEncoding]), "%s event %d: %v", run, event.GetEventId(), p)
				require.Equal(t, codec.KeyID(key), string(p.GetMetadata()[codec.MetadataKeyID]))
				for _, secret := range append(deviceIDs, plaintext...) {
					require.NotContains(t, string(p.GetData()), secret, "%s event %d", run, event.GetEventId())
				}
			})
			if start := event.GetWorkflowExecutionStartedEventAttributes(); start.GetWorkflowType().GetName() == "FirmwareRollout" {
				rolloutInput = start.GetInput()
			}
		}
	}
	assert.Greater(t, encrypted, 21*3, "inputs, results, activities and failures of every run")
	require.NotNil(t, rolloutInput)

	// The codec endpoint, as the Web UI calls it.
	body, err := protojson.Marshal(rolloutInput)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca)
	web := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	decode := func(authorization string) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, endpoint+"/default/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		req.Header.Set("Origin", "http://127.0.0.1:8233")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := web.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	status, decoded := decode("Bearer " + token)
	require.Equal(t, http.StatusOK, status, string(decoded))
	var plain commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(decoded, &plain))
	var spec workflows.Spec
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(plain.GetPayloads()[0], &spec))
	assert.Equal(t, "encrypted", spec.ID)
	assert.Equal(t, "file://"+image, spec.Firmware.URL)
	assert.Equal(t, digest, spec.Firmware.SHA256)
	for _, authorization := range []string{"", "Bearer " + randomSecretHex(t, 24), token} {
		status, refused := decode(authorization)
		assert.Equal(t, http.StatusUnauthorized, status, "Authorization %q", authorization)
		assert.NotContains(t, string(refused), image)
	}

	// The stock CLI decrypts through the same endpoint.
	temporal, err := temporalCLI()
	require.NoError(t, err)
	show := []string{"workflow", "show", "--address", s.server.hostPort, "--workflow-id", "encrypted", "--output", "json"}
	out, err = execOutput(temporal, show...)
	require.NoError(t, err, out)
	assert.Equal(t, codec.EncodingEncrypted, string(cliRolloutInput(t, out).GetMetadata()[codec.MetadataEncoding]))
	out, code = runCommandEnv(t, []string{"SSL_CERT_FILE=" + pki.caFile}, temporal, append(show,
		"--codec-endpoint", endpoint+"/default", "--codec-auth", "Bearer "+token)...)
	require.Equal(t, 0, code, out)
	spec = workflows.Spec{}
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(cliRolloutInput(t, out), &spec))
	assert.Equal(t, "file://"+image, spec.Firmware.URL)

	// Without the key the starter cannot read the report, and says why.
	out, code = runBinaryEnv(t, nil, "starter", append(s.connectionArgs(), "status", "encrypted")...)
	assert.Equal(t, 1, code, out)
	requireOneLineError(t, out)
	assert.Contains(t, out, "payload is encrypted (codec key "+codec.KeyID(key)+") and no codec key is configured: set $ROLLOUT_CODEC_KEY or --codec-key-file")

	// A rollback reads the rollout's spec (the starter) and its devices'
	// results (the worker) from the encrypted histories.
	previous, _ := firmwareImage(t, 16<<10)
	out, code = runBinaryEnv(t, []string{keyEnv}, "starter", append(s.connectionArgs(), "rollback", "encrypted",
		"--firmware", previous, "--version", "1.0.0", "--wait")...)
	require.Equal(t, 0, code, out)
	for _, d := range devices.stats(t).Devices {
		assert.Equal(t, "1.0.0", d.Version, d.ID)
		if d.Fault != fleet.FaultFail4xx {
			assert.EqualValues(t, 2, d.Installs, "%s: updated, then rolled back", d.ID)
		}
	}
}

// cliRolloutInput is the rollout's input in `temporal workflow show
// --output json`.
func cliRolloutInput(t *testing.T, out string) *commonpb.Payload {
	t.Helper()
	var history historypb.History
	require.NoError(t, protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal([]byte(out), &history), out)
	payloads := history.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	require.Len(t, payloads, 1)
	return payloads[0]
}

// storedHistories waits for n closed runs of the rollout's workflows in
// visibility and returns their histories as the server stores them.
func (s *stack) storedHistories(rolloutID string, n int) map[string][]*historypb.HistoryEvent {
	s.t.Helper()
	query := fmt.Sprintf("RolloutID = '%s' AND ExecutionStatus != 'Running'", rolloutID)
	var runs [][2]string
	waitFor(s.t, time.Minute, fmt.Sprintf("%d closed runs of rollout %s in visibility", n, rolloutID), func() bool {
		resp, err := s.client.ListWorkflow(context.Background(), listRequest(query, nil))
		require.NoError(s.t, err)
		runs = runs[:0]
		for _, e := range resp.GetExecutions() {
			runs = append(runs, [2]string{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()})
		}
		return len(runs) == n
	})
	histories := map[string][]*historypb.HistoryEvent{}
	for _, run := range runs {
		iter := s.client.GetWorkflowHistory(context.Background(), run[0], run[1], false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			event, err := iter.Next()
			require.NoError(s.t, err)
			histories[run[0]+"/"+run[1]] = append(histories[run[0]+"/"+run[1]], event)
		}
	}
	return histories
}

// eachStoredPayload visits every payload in m except search attributes, which
// stay plaintext so that they can be queried.
func eachStoredPayload(m protoreflect.Message, visit func(*commonpb.Payload)) {
	switch v := m.Interface().(type) {
	case *commonpb.Payload:
		visit(v)
		return
	case *commonpb.SearchAttributes:
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				eachStoredPayload(v.List().Get(i).Message(), visit)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				eachStoredPayload(mv.Message(), visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			eachStoredPayload(v.Message(), visit)
		}
		return true
	})
}
