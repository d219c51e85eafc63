package activities

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// The digest reader of a signed push hands over the last chunk only when
// the signature verifies over the image it streamed, so a device never
// receives a whole image that is not the signed one.
func TestVerifyingReader(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	img := make([]byte, 300<<10+7)
	_, _ = rand.Read(img)
	sum := hexSHA256(img)
	tampered := bytes.Clone(img)
	tampered[len(tampered)/2] ^= 1

	sig := func(key ed25519.PrivateKey, version, sha string) []byte {
		b, err := signing.DecodeSignature(signing.Sign(key, version, sha))
		require.NoError(t, err)
		return b
	}
	good := sig(priv, "2.0.0", sum)
	flipped := bytes.Clone(good)
	flipped[10] ^= 0x80

	for _, tc := range []struct {
		name    string
		image   []byte
		sha256  string // what the spec says
		sig     []byte
		primed  int64 // a resumed upload: bytes the device holds
		refusal string
	}{
		{name: "good signature", image: img, sha256: sum, sig: good},
		{name: "good signature, resumed", image: img, sha256: sum, sig: good, primed: 100 << 10},
		{name: "tampered image", image: tampered, sha256: sum, sig: good,
			refusal: "sha256 " + hexSHA256(tampered)},
		{name: "tampered image and spec digest", image: tampered, sha256: hexSHA256(tampered), sig: good,
			refusal: "sha256 " + hexSHA256(tampered)},
		{name: "tampered image, resumed", image: tampered, sha256: sum, sig: good, primed: 200 << 10,
			refusal: "sha256 " + hexSHA256(tampered)},
		{name: "tampered signature", image: img, sha256: sum, sig: flipped, refusal: "sha256 " + sum},
		{name: "wrong key", image: img, sha256: sum, sig: sig(otherPriv, "2.0.0", sum), refusal: "sha256 " + sum},
		{name: "signature of another version", image: img, sha256: sum, sig: sig(priv, "1.9.0", sum), refusal: "version 2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newDigestReader(bytes.NewReader(tc.image), tc.sha256, int64(len(tc.image)))
			r.signed = &signatureCheck{keys: signing.Keys{pub}, version: "2.0.0", sig: tc.sig}
			if tc.primed > 0 {
				require.NoError(t, r.prime(tc.primed))
			}
			var delivered bytes.Buffer
			_, err := io.Copy(&delivered, r)
			if tc.refusal == "" {
				require.NoError(t, err)
				require.Equal(t, tc.image[tc.primed:], delivered.Bytes())
				require.Nil(t, r.refused())
				require.True(t, r.done.Load())
				return
			}
			require.ErrorIs(t, err, errImageMismatch)
			require.Less(t, int64(delivered.Len()), int64(len(tc.image))-tc.primed, "the last chunk was withheld")
			refusal := r.refused()
			require.NotNil(t, refusal)
			require.Equal(t, workflows.ErrSignatureInvalid, refusal.errType)
			require.Contains(t, refusal.why, "firmware signature does not verify: none of the worker's 1 public keys signed")
			require.Contains(t, refusal.why, tc.refusal)
			require.False(t, r.done.Load())
		})
	}
}

// An unsigned push (no check) reads as before: only the digest counts.
func TestUnsignedReaderChecksOnlyTheDigest(t *testing.T) {
	t.Parallel()
	img := []byte(strings.Repeat("firmware", 1000))
	r := newDigestReader(bytes.NewReader(img), hexSHA256(img), int64(len(img)))
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, img, got)

	r = newDigestReader(bytes.NewReader(img), hexSHA256([]byte("other")), int64(len(img)))
	_, err = io.ReadAll(r)
	require.True(t, errors.Is(err, errImageMismatch))
	require.Equal(t, workflows.ErrChecksumMismatch, r.refused().errType)
}

// The worker's policy, before any device is touched.
func TestSignaturePolicy(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sum := hexSHA256([]byte("image"))
	signed := workflows.Firmware{Version: "2.0.0", SHA256: sum, Signature: signing.Sign(priv, "2.0.0", sum)}
	unsigned := workflows.Firmware{Version: "2.0.0", SHA256: sum}
	withKeys := &Activities{FirmwareKeys: signing.Keys{pub}}
	withoutKeys := &Activities{}

	check, err := withoutKeys.signatureCheck(unsigned)
	require.NoError(t, err)
	require.Nil(t, check, "no keys, no signature: pushed unsigned as before")

	check, err = withKeys.signatureCheck(signed)
	require.NoError(t, err)
	require.NotNil(t, check)
	require.Empty(t, check.refusal(sum))

	_, err = withKeys.signatureCheck(unsigned)
	require.ErrorContains(t, err, "firmware.signature is missing, and this worker pushes only signed firmware")
	_, err = withoutKeys.signatureCheck(signed)
	require.ErrorContains(t, err, "cannot verify firmware.signature: worker has no --firmware-public-key")
	_, err = withKeys.signatureCheck(workflows.Firmware{Version: "2.0.0", SHA256: sum, Signature: "AAAA"})
	require.ErrorContains(t, err, "firmware.signature must be a 64-byte ed25519 signature, got 3 bytes")
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
