package main

import (
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
)

// codecEndpointFrom parses worker flags and checks the codec endpoint's.
func codecEndpointFrom(t *testing.T, args ...string) (*codecEndpoint, error) {
	t.Helper()
	var e *codecEndpoint
	var err error
	app := &cli.App{
		Name:  "worker",
		Flags: append(connection.Flags(), codecEndpointFlags()...),
		Action: func(c *cli.Context) error {
			e, err = newCodecEndpoint(c, slog.New(slog.DiscardHandler))
			return nil
		},
	}
	require.NoError(t, app.Run(append([]string{"worker"}, args...)))
	return e, err
}

func TestCodecEndpointSettings(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokenFile, []byte("0123456789abcdef-alice\n\n0123456789abcdef-bob\n"), 0o600))
	shortFile := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(shortFile, []byte("0123456789abcdef-alice\nshort\n"), 0o600))

	t.Setenv("ROLLOUT_CODEC_AUTH_TOKEN", "")
	t.Setenv("ROLLOUT_CODEC_KEY", "")
	e, err := codecEndpointFrom(t)
	require.NoError(t, err)
	assert.Nil(t, e, "off by default")

	t.Setenv("ROLLOUT_CODEC_KEY", key)
	e, err = codecEndpointFrom(t, "--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile,
		"--codec-cors-origin", "https://ui.example.com/")
	require.NoError(t, err)
	require.NotNil(t, e)
	assert.Nil(t, e.tls)

	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"flags without --codec-listen": {args: []string{"--codec-cors-origin", "https://ui.example.com"},
			want: "--codec-cors-origin needs --codec-listen"},
		"no key": {env: map[string]string{"ROLLOUT_CODEC_KEY": ""}, args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile},
			want: "--codec-listen needs the codec keys: $ROLLOUT_CODEC_KEY or --codec-key-file"},
		"no token": {args: []string{"--codec-listen", "127.0.0.1:0"},
			want: "--codec-listen needs a bearer token in --codec-auth-token-file or $ROLLOUT_CODEC_AUTH_TOKEN: the endpoint decrypts payloads for whoever calls it"},
		"short token": {args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", shortFile},
			want: "--codec-auth-token-file " + shortFile + ": token 2 is shorter than 16 characters (make one with: openssl rand -hex 32)"},
		"two token sources": {env: map[string]string{"ROLLOUT_CODEC_AUTH_TOKEN": "0123456789abcdef-env"}, args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile},
			want: "give the codec endpoint's token in $ROLLOUT_CODEC_AUTH_TOKEN or --codec-auth-token-file, not both"},
		"bad origin": {args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile, "--codec-cors-origin", "ui.example.com"},
			want: `--codec-cors-origin "ui.example.com" must be scheme://host[:port], e.g. https://temporal-ui.example.com`},
		"origin with a path": {args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile, "--codec-cors-origin", "https://ui.example.com/namespaces"},
			want: `--codec-cors-origin "https://ui.example.com/namespaces" must be scheme://host[:port], e.g. https://temporal-ui.example.com`},
		"certificate without key": {args: []string{"--codec-listen", "127.0.0.1:0", "--codec-auth-token-file", tokenFile, "--codec-tls-cert", tokenFile},
			want: "--codec-tls-cert and --codec-tls-key go together"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := codecEndpointFrom(t, tc.args...)
			assert.EqualError(t, err, tc.want)
		})
	}
}
