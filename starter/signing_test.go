package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

// runStarter runs the CLI against an address with no server: these
// commands must not need one.
func runStarter(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"starter", "--address", "127.0.0.1:1"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// requireBadInput checks exit 2 with one line on stderr containing want.
func requireBadInput(t *testing.T, want string, args ...string) {
	t.Helper()
	code, stdout, stderr := runStarter(args...)
	assert.Equal(t, 2, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	assert.Len(t, lines, 1, stderr)
	assert.Contains(t, lines[0], want)
	assert.Empty(t, stdout)
}

func keygen(t *testing.T) (priv, pub string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	code, stdout, stderr := runStarter("keygen", "--out", dir)
	require.Equal(t, 0, code, stderr)
	priv, pub = filepath.Join(dir, signing.PrivateKeyFile), filepath.Join(dir, signing.PublicKeyFile)
	assert.Contains(t, stdout, "worker --firmware-public-key "+pub)
	return priv, pub
}

func TestKeygenWritesAKeyPairOnce(t *testing.T) {
	priv, pub := keygen(t)
	st, err := os.Stat(priv)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private key is its owner's only")
	privPEM, err := os.ReadFile(priv)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n"))
	key, err := signing.LoadPrivateKey(priv)
	require.NoError(t, err)
	keys, err := signing.LoadPublicKeys([]string{pub})
	require.NoError(t, err)
	assert.True(t, keys[0].Equal(key.Public()), "the public key is the private key's")

	requireBadInput(t, priv+" already exists: remove it or choose another directory", "keygen", "--out", filepath.Dir(priv))
	after, err := os.ReadFile(priv)
	require.NoError(t, err)
	assert.Equal(t, privPEM, after, "an existing key is never overwritten")

	requireBadInput(t, "--out is required", "keygen")
	requireBadInput(t, `keygen takes no arguments, got ["x"]`, "keygen", "--out", t.TempDir(), "x")
}

func TestSignPrintsAVerifyingSignature(t *testing.T) {
	priv, pub := keygen(t)
	image := filepath.Join(t.TempDir(), "fw.bin")
	require.NoError(t, os.WriteFile(image, []byte("firmware"), 0o644))
	sum := sha256.Sum256([]byte("firmware"))

	code, stdout, stderr := runStarter("sign", "--key", priv, "--version", "2.0.0", image)
	require.Equal(t, 0, code, stderr)
	sig, err := signing.DecodeSignature(strings.TrimSuffix(stdout, "\n"))
	require.NoError(t, err, "stdout is the signature and a newline: %q", stdout)
	keys, err := signing.LoadPublicKeys([]string{pub})
	require.NoError(t, err)
	assert.True(t, keys.Verify("2.0.0", hex.EncodeToString(sum[:]), sig))
	assert.False(t, keys.Verify("2.0.1", hex.EncodeToString(sum[:]), sig), "the version is signed too")

	requireBadInput(t, "--key is required", "sign", "--version", "2.0.0", image)
	requireBadInput(t, "--version is required", "sign", "--key", priv, image)
	requireBadInput(t, "sign needs exactly one image", "sign", "--key", priv, "--version", "2.0.0")
	requireBadInput(t, `--key: `+pub+`: PEM block is "PUBLIC KEY", want "PRIVATE KEY"`, "sign", "--key", pub, "--version", "2.0.0", image)
	requireBadInput(t, "--key: open "+image+".key: no such file or directory", "sign", "--key", image+".key", "--version", "2.0.0", image)
	requireBadInput(t, "--firmware: firmware image "+image+".nope is not readable", "sign", "--key", priv, "--version", "2.0.0", image+".nope")
}

// start checks the signature with --firmware-public-key before anything
// starts, and signs with --sign-key; --dry-run shows the signature.
func TestStartChecksTheSignature(t *testing.T) {
	priv, pub := keygen(t)
	otherPriv, _ := keygen(t)
	dir := t.TempDir()
	image := filepath.Join(dir, "fw.bin")
	require.NoError(t, os.WriteFile(image, []byte("firmware"), 0o644))
	inventory := filepath.Join(dir, "inventory.json")
	require.NoError(t, os.WriteFile(inventory, []byte(`[{"id":"pos-1","address":"http://127.0.0.1:1/devices/pos-1","status":"online","firmware_version":"1.0.0"}]`), 0o644))
	sign := func(key, version string) string {
		code, stdout, stderr := runStarter("sign", "--key", key, "--version", version, image)
		require.Equal(t, 0, code, stderr)
		return strings.TrimSpace(stdout)
	}
	good := sign(priv, "2.0.0")
	start := []string{"start", "--id", "r1", "--inventory", inventory, "--firmware", image, "--version", "2.0.0", "--dry-run"}
	with := func(extra ...string) []string { return append(append([]string{}, start...), extra...) }

	for _, args := range [][]string{
		with("--signature", good, "--firmware-public-key", pub),
		with("--sign-key", priv, "--firmware-public-key", pub),
	} {
		code, stdout, stderr := runStarter(args...)
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, stdout, "  signature  "+good+"\n", "ed25519 signatures are deterministic")
	}

	sum := "c3bf47ea1f4a4a605470313cacb3a44f4a461f68c6faeab07e737610cb5ac835"
	requireBadInput(t, "firmware.signature does not verify with --firmware-public-key for version 2.0.0 and sha256 "+sum,
		with("--signature", sign(otherPriv, "2.0.0"), "--firmware-public-key", pub)...)
	requireBadInput(t, "firmware.signature does not verify with --firmware-public-key for version 2.0.0",
		with("--signature", sign(priv, "1.9.0"), "--firmware-public-key", pub)...)
	requireBadInput(t, "--firmware-public-key: the firmware is unsigned", with("--firmware-public-key", pub)...)
	requireBadInput(t, "firmware.signature: is not base64 (standard encoding)", with("--signature", "not base64!")...)
	requireBadInput(t, "firmware.signature: must be a 64-byte ed25519 signature, got 3 bytes", with("--signature", "AAAA")...)
	requireBadInput(t, "--signature and --sign-key are alternatives", with("--signature", good, "--sign-key", priv)...)
	requireBadInput(t, "--sign-key: open /nope.key: no such file or directory", with("--sign-key", "/nope.key")...)
	requireBadInput(t, "--firmware-public-key: open /nope.pub: no such file or directory", with("--signature", good, "--firmware-public-key", "/nope.pub")...)
}
