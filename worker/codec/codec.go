// Package codec encrypts Temporal payloads with AES-256-GCM, so workflow
// inputs, results, heartbeats, queries and updates are ciphertext at rest
// in the Temporal server. The worker and the starter hold the keys; the
// server never does.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	MetadataEncoding  = converter.MetadataEncoding
	EncodingEncrypted = "binary/encrypted"
	MetadataKeyID     = "encryption-key-id"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Codec is a converter.PayloadCodec. It encrypts with its first key and
// decrypts with any of them, so keys rotate: put the new key first and
// keep the old ones until no history needs them.
type Codec struct {
	encryptID string
	keys      map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New makes a codec from 32-byte keys; the first one encrypts.
func New(keys [][]byte) (*Codec, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key")
	}
	c := &Codec{keys: map[string]cipher.AEAD{}}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d (AES-256)", i+1, len(key), KeySize)
		}
		id := KeyID(key)
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("key %d (id %s) is given twice", i+1, id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		c.keys[id] = aead
		if i == 0 {
			c.encryptID = id
		}
	}
	return c, nil
}

// KeyID names a key in payload metadata without revealing it: the first
// 8 bytes of its SHA-256, in hex.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// EncryptKeyID is the ID of the key new payloads are encrypted with.
func (c *Codec) EncryptKeyID() string { return c.encryptID }

// Encode encrypts each whole payload, metadata included, so even its
// encoding is hidden. The key ID is authenticated with it.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.keys[c.encryptID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encrypting payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypting payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(c.encryptID),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.encryptID)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads and passes the others through, so
// histories written before encryption was turned on stay readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		plain, err := c.decrypt(p)
		if err != nil {
			return nil, err
		}
		out[i] = plain
	}
	return out, nil
}

func (c *Codec) decrypt(p *commonpb.Payload) (*commonpb.Payload, error) {
	id := string(p.GetMetadata()[MetadataKeyID])
	aead, ok := c.keys[id]
	if !ok {
		return nil, fmt.Errorf("payload is encrypted with codec key %q, which is not among the configured keys %v", id, c.keyIDs())
	}
	data := p.GetData()
	if len(data) < aead.NonceSize() {
		return nil, fmt.Errorf("encrypted payload (codec key %s) is truncated", id)
	}
	nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("encrypted payload (codec key %s) does not decrypt: it was altered or corrupted", id)
	}
	var decoded commonpb.Payload
	if err := proto.Unmarshal(plain, &decoded); err != nil {
		return nil, fmt.Errorf("decrypted payload (codec key %s) is not a payload: %w", id, err)
	}
	return &decoded, nil
}

func (c *Codec) keyIDs() []string {
	ids := make([]string, 0, len(c.keys))
	for id := range c.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// NoKeys is the codec of a process without codec keys: it writes
// plaintext, and refuses encrypted payloads with an error that says what
// is missing, instead of the SDK's "payload encoding is not supported".
type NoKeys struct{}

// Encode leaves payloads as they are.
func (NoKeys) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) { return payloads, nil }

// Decode passes plaintext payloads through and refuses encrypted ones.
func (NoKeys) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	for _, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) == EncodingEncrypted {
			return nil, fmt.Errorf("payload is encrypted (codec key %s) and no codec key is configured: set $%s or --codec-key-file",
				p.GetMetadata()[MetadataKeyID], KeyEnv)
		}
	}
	return payloads, nil
}
