package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dovaclean/go-update-orchestrator/worker/codec"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

func newCodec(t *testing.T, keys ...[]byte) *codec.Codec {
	t.Helper()
	c, err := codec.New(keys)
	require.NoError(t, err)
	return c
}

var spec = workflows.Spec{
	ID:        "fw-2.4.0",
	Firmware:  workflows.Firmware{Version: "2.4.0", URL: "https://fw.example.com/pos-2.4.0.bin", SHA256: "ab12"},
	Inventory: "https://fleet.example.com/inventory",
}

func TestRoundTripThroughTheDataConverter(t *testing.T) {
	c := newCodec(t, newKey(t))
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)

	p, err := dc.ToPayload(spec)
	require.NoError(t, err)
	assert.Equal(t, codec.EncodingEncrypted, string(p.Metadata[codec.MetadataEncoding]))
	assert.Equal(t, c.EncryptKeyID(), string(p.Metadata[codec.MetadataKeyID]))
	assert.NotContains(t, string(p.Data), "fw.example.com")
	assert.NotContains(t, string(p.Data), "json/plain", "the inner payload's metadata is encrypted too")

	var back workflows.Spec
	require.NoError(t, dc.FromPayload(p, &back))
	assert.Equal(t, spec, back)
}

func TestEncryptionIsRandomized(t *testing.T) {
	c := newCodec(t, newKey(t))
	plain := &commonpb.Payload{Data: []byte("same")}
	a, err := c.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	b, err := c.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.NotEqual(t, a[0].Data, b[0].Data, "a fresh nonce per payload")
}

func TestWrongKeyFailsClearly(t *testing.T) {
	keyA, keyB := newKey(t), newKey(t)
	encoded, err := newCodec(t, keyA).Encode([]*commonpb.Payload{{Data: []byte("secret")}})
	require.NoError(t, err)

	_, err = newCodec(t, keyB).Decode(encoded)
	require.Error(t, err)
	assert.Equal(t, `payload is encrypted with codec key "`+codec.KeyID(keyA)+`", which is not among the configured keys [`+codec.KeyID(keyB)+`]`, err.Error())
}

func TestRotatedKeysStillDecrypt(t *testing.T) {
	oldKey, newKeyBytes := newKey(t), newKey(t)
	old := newCodec(t, oldKey)
	encodedByOld, err := old.Encode([]*commonpb.Payload{{Data: []byte("from before")}})
	require.NoError(t, err)

	rotated := newCodec(t, newKeyBytes, oldKey)
	decoded, err := rotated.Decode(encodedByOld)
	require.NoError(t, err)
	assert.Equal(t, "from before", string(decoded[0].Data))

	encodedByNew, err := rotated.Encode([]*commonpb.Payload{{Data: []byte("after")}})
	require.NoError(t, err)
	assert.Equal(t, codec.KeyID(newKeyBytes), string(encodedByNew[0].Metadata[codec.MetadataKeyID]))
	_, err = old.Decode(encodedByNew)
	assert.ErrorContains(t, err, "not among the configured keys")
}

func TestTamperedCiphertextFails(t *testing.T) {
	c := newCodec(t, newKey(t))
	encoded, err := c.Encode([]*commonpb.Payload{{Data: []byte("2.4.0")}})
	require.NoError(t, err)
	for i := range encoded[0].Data {
		tampered := &commonpb.Payload{Metadata: encoded[0].Metadata, Data: bytes.Clone(encoded[0].Data)}
		tampered.Data[i] ^= 0x01
		_, err := c.Decode([]*commonpb.Payload{tampered})
		require.Error(t, err, "byte %d flipped", i)
		assert.Contains(t, err.Error(), "does not decrypt: it was altered or corrupted")
	}
	_, err = c.Decode([]*commonpb.Payload{{Metadata: encoded[0].Metadata, Data: encoded[0].Data[:5]}})
	assert.ErrorContains(t, err, "is truncated")
}

func TestKeyIDIsAuthenticated(t *testing.T) {
	keyA, keyB := newKey(t), newKey(t)
	c := newCodec(t, keyA, keyB)
	encoded, err := c.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)
	encoded[0].Metadata[codec.MetadataKeyID] = []byte(codec.KeyID(keyB))
	_, err = c.Decode(encoded)
	assert.ErrorContains(t, err, "does not decrypt")
}

func TestUnencryptedPayloadsPassThroughDecode(t *testing.T) {
	c := newCodec(t, newKey(t))
	plain, err := converter.GetDefaultDataConverter().ToPayload(spec)
	require.NoError(t, err)
	encrypted, err := c.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)

	decoded, err := c.Decode([]*commonpb.Payload{plain, encrypted[0]})
	require.NoError(t, err)
	assert.Same(t, plain, decoded[0])
	assert.Equal(t, plain.Data, decoded[1].Data)
	assert.Equal(t, plain.Metadata, decoded[1].Metadata)
}

func TestNewRefusesBadKeys(t *testing.T) {
	key := newKey(t)
	for name, tc := range map[string]struct {
		keys [][]byte
		want string
	}{
		"none":      {nil, "no key"},
		"short":     {[][]byte{key[:16]}, "key 1 is 16 bytes, want 32 (AES-256)"},
		"duplicate": {[][]byte{key, key}, "key 2 (id " + codec.KeyID(key) + ") is given twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := codec.New(tc.keys)
			assert.EqualError(t, err, tc.want)
		})
	}
}

func TestLoadFromEnvAndFile(t *testing.T) {
	keyA, keyB := newKey(t), newKey(t)
	b64A, b64B := base64.StdEncoding.EncodeToString(keyA), base64.StdEncoding.EncodeToString(keyB)

	t.Setenv(codec.KeyEnv, "")
	c, err := codec.Load("")
	require.NoError(t, err)
	assert.Nil(t, c, "no key: no encryption")

	t.Setenv(codec.KeyEnv, b64A+","+b64B)
	c, err = codec.Load("")
	require.NoError(t, err)
	assert.Equal(t, codec.KeyID(keyA), c.EncryptKeyID())

	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte(b64B+"\n"+b64A+"\n"), 0o600))
	_, err = codec.Load(file)
	assert.EqualError(t, err, "give the codec keys in $ROLLOUT_CODEC_KEY or --codec-key-file, not both")

	t.Setenv(codec.KeyEnv, "")
	c, err = codec.Load(file)
	require.NoError(t, err)
	assert.Equal(t, codec.KeyID(keyB), c.EncryptKeyID())

	_, err = codec.Load(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "--codec-key-file: open ")

	secret := "not-base64-" + b64A[:10]
	t.Setenv(codec.KeyEnv, secret)
	_, err = codec.Load("")
	require.EqualError(t, err, "$ROLLOUT_CODEC_KEY: key 1 is not base64 (want base64 of 32 bytes, e.g. from: openssl rand -base64 32)")
	assert.NotContains(t, err.Error(), secret, "a key is never echoed")

	t.Setenv(codec.KeyEnv, " , ")
	_, err = codec.Load("")
	assert.ErrorContains(t, err, "$ROLLOUT_CODEC_KEY: no key")
}

func TestWithoutKeysEncryptedPayloadsSayWhatIsMissing(t *testing.T) {
	key := newKey(t)
	encrypted, err := newCodec(t, key).Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}

	out, err := codec.NoKeys{}.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Same(t, plain, out[0], "nothing is encrypted")
	out, err = codec.NoKeys{}.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Same(t, plain, out[0])
	_, err = codec.NoKeys{}.Decode([]*commonpb.Payload{plain, encrypted[0]})
	assert.EqualError(t, err, "payload is encrypted (codec key "+codec.KeyID(key)+") and no codec key is configured: set $ROLLOUT_CODEC_KEY or --codec-key-file")
}
