package signing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The signed message is a contract with every signer (starter sign,
// openssl) and every device: it must not change by accident.
func TestMessageFormat(t *testing.T) {
	sum := strings.Repeat("AB", 32)
	require.Equal(t,
		"go-update-orchestrator firmware v1\nversion 2.4.0\nsha256 "+strings.Repeat("ab", 32)+"\n",
		string(Message("2.4.0", sum)))
}

func TestSignAndVerify(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath, err := GenerateKeyFiles(dir)
	require.NoError(t, err)
	priv, err := LoadPrivateKey(privPath)
	require.NoError(t, err)
	_, otherPub, err := GenerateKeyFiles(filepath.Join(dir, "other"))
	require.NoError(t, err)
	keys, err := LoadPublicKeys([]string{otherPub, pubPath})
	require.NoError(t, err)
	sum := strings.Repeat("0f", 32)

	sig, err := DecodeSignature(Sign(priv, "2.4.0", sum))
	require.NoError(t, err)
	require.True(t, keys.Verify("2.4.0", sum, sig), "any of the keys may have signed")
	require.True(t, keys.Verify("2.4.0", strings.ToUpper(sum), sig), "the digest's case does not matter")
	require.False(t, keys.Verify("2.5.0", sum, sig))
	require.False(t, keys.Verify("2.4.0", strings.Repeat("0e", 32), sig))
	require.False(t, keys[:1].Verify("2.4.0", sum, sig), "the other key did not sign")
	require.False(t, Keys(nil).Verify("2.4.0", sum, sig))
}

func TestKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	require.NoError(t, err)
	ecPath := filepath.Join(dir, "ec.pub")
	require.NoError(t, os.WriteFile(ecPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	garbage := filepath.Join(dir, "garbage.pub")
	require.NoError(t, os.WriteFile(garbage, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}), 0o644))

	_, err = LoadPublicKeys([]string{ecPath})
	require.EqualError(t, err, ecPath+": is a *ecdsa.PublicKey key, not ed25519")
	_, err = LoadPublicKeys([]string{garbage})
	require.ErrorContains(t, err, garbage+": ")
	_, err = LoadPrivateKey(ecPath)
	require.EqualError(t, err, ecPath+`: PEM block is "PUBLIC KEY", want "PRIVATE KEY"`)

	_, err = DecodeSignature("AAAA")
	require.EqualError(t, err, "must be a 64-byte ed25519 signature, got 3 bytes")
	_, err = DecodeSignature("AAA")
	require.EqualError(t, err, "is not base64 (standard encoding)")
}
