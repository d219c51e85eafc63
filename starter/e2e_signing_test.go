//go:build e2e

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

// signingKeys makes a key pair with starter keygen and returns the key
// files' paths.
func (s *stack) signingKeys() (priv, pub string) {
	s.t.Helper()
	dir := filepath.Join(s.t.TempDir(), "keys")
	out, code := s.starter("keygen", "--out", dir)
	require.Equal(s.t, 0, code, out)
	return filepath.Join(dir, signing.PrivateKeyFile), filepath.Join(dir, signing.PublicKeyFile)
}

// sign signs the image for version with starter sign.
func (s *stack) sign(key, version, image string) string {
	s.t.Helper()
	out, code := s.starter("sign", "--key", key, "--version", version, image)
	require.Equal(s.t, 0, code, out)
	return strings.TrimSpace(out)
}

// historyText is every event of a workflow's history as text, payloads
// included.
func (s *stack) historyText(workflowID string) string {
	s.t.Helper()
	var b strings.Builder
	events := s.client.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for events.HasNext() {
		e, err := events.Next()
		require.NoError(s.t, err)
		b.WriteString(e.String())
	}
	return b.String()
}

// A signed image goes to devices that require and check signatures,
// through a worker that checks it too: every device is updated once. The
// signature is in the histories, the private key is not.
func TestE2ESigningSignedRollout(t *testing.T) {
	s := newStack(t, sharedServer)
	priv, pub := s.signingKeys()
	image, _ := firmwareImage(t, 256<<10)
	signature := s.sign(priv, "2.4.0", image)
	devices := startFleet(t, "--devices", "20", "--version", "2.3.1", "--reboot", "300ms",
		"--require-signature", "--firmware-public-key", pub)
	s.startWorkerWith("--firmware-public-key", pub)

	out, code := s.starter("start", "--id", "signed-20", "--inventory", devices.inventory(),
		"--firmware", image, "--version", "2.4.0", "--signature", signature, "--firmware-public-key", pub, "--wait")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "20 updated, 0 already current, 0 failed")
	st := devices.stats(t)
	require.Len(t, st.Devices, 20)
	for _, d := range st.Devices {
		assert.Equal(t, "2.4.0", d.Version, d.ID)
		assert.EqualValues(t, 1, d.Installs, d.ID)
		assert.EqualValues(t, 1, d.Uploads, d.ID)
	}

	key, err := signing.LoadPrivateKey(priv)
	require.NoError(t, err)
	pemFile, err := os.ReadFile(priv)
	require.NoError(t, err)
	pemBody := strings.Split(string(pemFile), "\n")[1] // the base64 line between BEGIN and END
	for _, id := range []string{"signed-20", "signed-20/" + st.Devices[0].ID} {
		history := s.historyText(id)
		assert.Contains(t, history, signature, "%s: the signature travels in the spec", id)
		assert.NotContains(t, history, pemBody, "%s: the private key never enters a workflow", id)
		assert.NotContains(t, history, string(key.Seed()), id)
	}
}

// A signature made for another image is caught by the starter when it has
// the public key (nothing starts), and by the worker when the starter does
// not check: every device fails with the signature reason after one
// incomplete upload, none installs, and the starter exits 1.
func TestE2ESigningBadSignature(t *testing.T) {
	s := newStack(t, sharedServer)
	priv, pub := s.signingKeys()
	image, _ := firmwareImage(t, 256<<10)
	other := filepath.Join(t.TempDir(), "other.bin")
	require.NoError(t, os.WriteFile(other, []byte("another image"), 0o644))
	wrong := s.sign(priv, "2.4.0", other)
	devices := startFleet(t, "--devices", "10", "--version", "2.3.1", "--reboot", "300ms",
		"--require-signature", "--firmware-public-key", pub)
	s.startWorkerWith("--firmware-public-key", pub)
	start := []string{"start", "--id", "bad-signature", "--inventory", devices.inventory(),
		"--firmware", image, "--version", "2.4.0", "--signature", wrong, "--wait"}

	out, code := s.starter(append(start, "--firmware-public-key", pub)...)
	require.Equal(t, 2, code, out)
	assert.Equal(t, 1, len(scanLines(out)), out)
	assert.Contains(t, out, "starter: firmware.signature does not verify with --firmware-public-key for version 2.4.0")
	_, err := s.client.DescribeWorkflowExecution(context.Background(), "bad-signature", "")
	var notFound *serviceerror.NotFound
	require.True(t, errors.As(err, &notFound), "nothing started: %v", err)

	out, code = s.starter(start...)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "rollout bad-signature completed-with-failures")
	assert.Contains(t, out, "0 updated, 0 already current, 10 failed")
	for _, d := range devices.stats(t).Devices {
		assert.Contains(t, out, d.ID+"  push: firmware signature does not verify: none of the worker's 1 public keys signed version 2.4.0")
		assert.EqualValues(t, 1, d.Uploads, "%s: a bad signature costs one attempt", d.ID)
		assert.Less(t, d.Bytes, int64(256<<10), "%s never received the whole image", d.ID)
		assert.Zero(t, d.Installs, d.ID)
		assert.Equal(t, "2.3.1", d.Version, d.ID)
	}
	r := s.result("bad-signature", time.Minute)
	assert.Equal(t, 10, r.Counts.Failed)
}
