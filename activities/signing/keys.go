package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Key files are PEM, as openssl writes them: "PUBLIC KEY" (PKIX) and
// "PRIVATE KEY" (PKCS #8), so `openssl genpkey -algorithm ed25519` keys
// work too.
const (
	PrivateKeyFile = "firmware-signing.key"
	PublicKeyFile  = "firmware-signing.pub"
)

// LoadPublicKeys reads the ed25519 public keys of the files.
func LoadPublicKeys(paths []string) (Keys, error) {
	keys := make(Keys, 0, len(paths))
	for _, path := range paths {
		key, err := parsePEM(path, "PUBLIC KEY", x509.ParsePKIXPublicKey)
		if err != nil {
			return nil, err
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: is a %T key, not ed25519", path, key)
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// LoadPrivateKey reads an ed25519 private key file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	key, err := parsePEM(path, "PRIVATE KEY", x509.ParsePKCS8PrivateKey)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: is a %T key, not ed25519", path, key)
	}
	return priv, nil
}

func parsePEM(path, blockType string, parse func([]byte) (any, error)) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block (want %q)", path, blockType)
	}
	if block.Type != blockType {
		return nil, fmt.Errorf("%s: PEM block is %q, want %q", path, block.Type, blockType)
	}
	key, err := parse(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return key, nil
}

// GenerateKeyFiles writes a new key pair into dir: the private key
// readable by its owner only, the public key by all. It never overwrites
// a key: losing the private key of a deployed public key is not undoable.
func GenerateKeyFiles(dir string) (privPath, pubPath string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	privPath, pubPath = filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists: remove it or choose another directory", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
	}
	if err := writeNew(privPath, "PRIVATE KEY", privDER, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, "PUBLIC KEY", pubDER, 0o644); err != nil {
		return "", "", err
	}
	return privPath, pubPath, nil
}

// writeNew creates path (failing when it exists) with mode from the start,
// so the private key is never readable by others, not even briefly.
func writeNew(path, blockType string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
