// Package signing signs firmware images and verifies their signatures:
// ed25519 over a short statement that names the image's version and
// SHA-256. The worker, the starter and devicemock share it, so the three
// agree on the signed message byte for byte.
package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// messageHeader versions the statement, so that a future format cannot be
// confused with this one.
const messageHeader = "go-update-orchestrator firmware v1\n"

// Message is what a signature covers: the version the image is pushed as
// and its SHA-256. The digest binds the bytes (and so their size), the
// version stops a signed 2.4.0 image being pushed labelled 2.5.0. A device
// or worker can build it while streaming, from the digest it computes.
func Message(version, sha256Hex string) []byte {
	return []byte(messageHeader + "version " + version + "\nsha256 " + strings.ToLower(sha256Hex) + "\n")
}

// Sign returns the signature of the image with that version and digest,
// base64 (standard encoding), as firmware.signature takes it.
func Sign(key ed25519.PrivateKey, version, sha256Hex string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, Message(version, sha256Hex)))
}

// DecodeSignature reads a base64 (standard encoding) ed25519 signature.
func DecodeSignature(b64 string) ([]byte, error) {
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errors.New("is not base64 (standard encoding)")
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("must be a %d-byte ed25519 signature, got %d bytes", ed25519.SignatureSize, len(sig))
	}
	return sig, nil
}

// Keys are the public keys a signature may verify with: more than one
// while a signing key is being rotated.
type Keys []ed25519.PublicKey

// Verify says whether sig signs the image with that version and digest
// under any of the keys.
func (k Keys) Verify(version, sha256Hex string, sig []byte) bool {
	msg := Message(version, sha256Hex)
	for _, pub := range k {
		if ed25519.Verify(pub, msg, sig) {
			return true
		}
	}
	return false
}
