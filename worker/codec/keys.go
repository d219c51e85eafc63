package codec

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// KeyEnv holds the codec keys when no key file is given.
const KeyEnv = "ROLLOUT_CODEC_KEY"

// Load makes the codec from the keys in file, or else in $ROLLOUT_CODEC_KEY:
// base64 keys of 32 bytes, separated by commas or white space, the first
// one encrypting. It returns nil when neither is set: no encryption.
func Load(file string) (*Codec, error) {
	env := os.Getenv(KeyEnv)
	source, text := "$"+KeyEnv, env
	switch {
	case file != "" && env != "":
		return nil, fmt.Errorf("give the codec keys in $%s or --codec-key-file, not both", KeyEnv)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--codec-key-file: %v", err)
		}
		source, text = "--codec-key-file "+file, string(b)
	case env == "":
		return nil, nil
	}
	keys, err := parseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	c, err := New(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	return c, nil
}

func parseKeys(text string) ([][]byte, error) {
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("no key (want base64 of %d bytes, e.g. from: openssl rand -base64 %d)", KeySize, KeySize)
	}
	keys := make([][]byte, len(fields))
	for i, f := range fields {
		key, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			// The key itself is never echoed: it is a secret.
			return nil, fmt.Errorf("key %d is not base64 (want base64 of %d bytes, e.g. from: openssl rand -base64 %d)", i+1, KeySize, KeySize)
		}
		keys[i] = key
	}
	return keys, nil
}
