package connection_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
)

// options runs a CLI with the connection flags, like the worker and the
// starter, and returns the client options they would dial with.
func options(t *testing.T, args ...string) (client.Options, error) {
	t.Helper()
	var opts client.Options
	var optsErr error
	app := &cli.App{
		Name:  "test",
		Flags: connection.Flags(),
		Action: func(c *cli.Context) error {
			opts, optsErr = connection.Options(c)
			return nil
		},
	}
	require.NoError(t, app.Run(append([]string{"test"}, args...)))
	return opts, optsErr
}

// clearEnv unsets the connection variables a developer's shell may hold.
func clearEnv(t *testing.T) {
	for _, name := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
		"TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "ROLLOUT_CODEC_KEY"} {
		t.Setenv(name, "")
		require.NoError(t, os.Unsetenv(name))
	}
}

type pki struct {
	caFile, certFile, keyFile, otherKeyFile string
	server                                  *x509.Certificate // for frontend.example.com
}

func writePEM(t *testing.T, path, kind string, der []byte) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
	return path
}

// newPKI writes a CA and a client certificate it signed.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "worker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &clientKey.PublicKey, caKey)
	require.NoError(t, err)
	serverTemplate := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "frontend"},
		DNSNames: []string{"frontend.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &clientKey.PublicKey, caKey)
	require.NoError(t, err)
	server, err := x509.ParseCertificate(serverDER)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	require.NoError(t, err)
	otherDER, err := x509.MarshalECPrivateKey(caKey)
	require.NoError(t, err)
	return pki{
		caFile:       writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER),
		certFile:     writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", leafDER),
		keyFile:      writePEM(t, filepath.Join(dir, "client-key.pem"), "EC PRIVATE KEY", keyDER),
		otherKeyFile: writePEM(t, filepath.Join(dir, "other-key.pem"), "EC PRIVATE KEY", otherDER),
		server:       server,
	}
}

func TestPlaintextByDefault(t *testing.T) {
	clearEnv(t)
	opts, err := options(t)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7233", opts.HostPort)
	assert.Equal(t, "default", opts.Namespace)
	assert.Nil(t, opts.ConnectionOptions.TLS)
	assert.Nil(t, opts.Credentials)
	assert.Equal(t, "json/plain", encoding(t, opts), "payloads stay plaintext")
	assert.Nil(t, opts.FailureConverter)
}

// encoding is how opts store a payload.
func encoding(t *testing.T, opts client.Options) string {
	t.Helper()
	p, err := opts.DataConverter.ToPayload(map[string]string{"url": "https://fw.example.com/2.4.0.bin"})
	require.NoError(t, err)
	return string(p.Metadata["encoding"])
}

func TestMutualTLSFromFlags(t *testing.T) {
	clearEnv(t)
	p := newPKI(t)
	opts, err := options(t, "--address", "temporal.example.com:7233", "--tls-cert", p.certFile, "--tls-key", p.keyFile,
		"--tls-ca", p.caFile, "--tls-server-name", "frontend.example.com")
	require.NoError(t, err)
	conf := opts.ConnectionOptions.TLS
	require.NotNil(t, conf, "TLS settings turn TLS on")
	assert.Len(t, conf.Certificates, 1)
	assert.NotNil(t, conf.RootCAs)
	assert.Equal(t, "frontend.example.com", conf.ServerName)
	assert.Equal(t, uint16(tls.VersionTLS12), conf.MinVersion)
	assert.False(t, conf.InsecureSkipVerify)
	assert.Nil(t, opts.Credentials)
}

func TestMutualTLSFromTheEnvironment(t *testing.T) {
	clearEnv(t)
	p := newPKI(t)
	t.Setenv("TEMPORAL_ADDRESS", "temporal.example.com:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "fleet")
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", p.certFile)
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", p.keyFile)
	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", p.caFile)
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", "frontend.example.com")
	opts, err := options(t)
	require.NoError(t, err)
	assert.Equal(t, "temporal.example.com:7233", opts.HostPort)
	assert.Equal(t, "fleet", opts.Namespace)
	require.NotNil(t, opts.ConnectionOptions.TLS)
	assert.Len(t, opts.ConnectionOptions.TLS.Certificates, 1)
	assert.Equal(t, "frontend.example.com", opts.ConnectionOptions.TLS.ServerName)
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	clearEnv(t)
	t.Setenv("TEMPORAL_API_KEY", "key-from-env")
	opts, err := options(t)
	require.NoError(t, err)
	assert.NotNil(t, opts.Credentials)
	require.NotNil(t, opts.ConnectionOptions.TLS, "an API key turns TLS on, as Temporal Cloud needs")
	assert.Nil(t, opts.ConnectionOptions.TLS.RootCAs, "the system's CAs")

	opts, err = options(t, "--tls=false")
	require.NoError(t, err)
	assert.NotNil(t, opts.Credentials)
	assert.Nil(t, opts.ConnectionOptions.TLS, "unless TLS is turned off explicitly")

	t.Setenv("TEMPORAL_TLS", "false")
	opts, err = options(t)
	require.NoError(t, err)
	assert.Nil(t, opts.ConnectionOptions.TLS)
}

func TestAPIKeyFile(t *testing.T) {
	clearEnv(t)
	file := filepath.Join(t.TempDir(), "api-key")
	require.NoError(t, os.WriteFile(file, []byte("key-from-file\n"), 0o600))
	opts, err := options(t, "--api-key-file", file)
	require.NoError(t, err)
	assert.NotNil(t, opts.Credentials)
	assert.NotNil(t, opts.ConnectionOptions.TLS)
}

func TestTLSOnWithoutOtherSettings(t *testing.T) {
	clearEnv(t)
	t.Setenv("TEMPORAL_TLS", "true")
	opts, err := options(t)
	require.NoError(t, err)
	require.NotNil(t, opts.ConnectionOptions.TLS)
	assert.Empty(t, opts.ConnectionOptions.TLS.Certificates)
}

func TestHostVerificationOffStillChecksTheChain(t *testing.T) {
	clearEnv(t)
	p := newPKI(t)
	opts, err := options(t, "--tls-ca", p.caFile, "--tls-disable-host-verification")
	require.NoError(t, err)
	conf := opts.ConnectionOptions.TLS
	require.NotNil(t, conf)
	assert.True(t, conf.InsecureSkipVerify)
	require.NotNil(t, conf.VerifyConnection)

	// A server certificate from the CA passes, whatever host it names;
	// one from another CA does not.
	assert.NoError(t, conf.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{p.server}}))
	assert.ErrorContains(t, conf.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{newPKI(t).server}}),
		"certificate signed by unknown authority")
}

func TestCodecKeySetsTheConverters(t *testing.T) {
	clearEnv(t)
	t.Setenv("ROLLOUT_CODEC_KEY", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	opts, err := options(t)
	require.NoError(t, err)
	assert.Equal(t, "binary/encrypted", encoding(t, opts))
	require.NotNil(t, opts.FailureConverter, "failure messages are encrypted too")
	failure := opts.FailureConverter.ErrorToFailure(errors.New("push: device answered 403 Forbidden"))
	assert.Equal(t, "Encoded failure", failure.GetMessage())
	assert.Equal(t, "binary/encrypted", string(failure.GetEncodedAttributes().GetMetadata()["encoding"]))
}

func TestBadCombinationsAndFiles(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"cert without key": {args: []string{"--tls-cert", p.certFile},
			want: "--tls-cert ($TEMPORAL_TLS_CLIENT_CERT_PATH) needs --tls-key ($TEMPORAL_TLS_CLIENT_KEY_PATH)"},
		"key without cert from the environment": {env: map[string]string{"TEMPORAL_TLS_CLIENT_KEY_PATH": p.keyFile},
			want: "--tls-key ($TEMPORAL_TLS_CLIENT_KEY_PATH) needs --tls-cert ($TEMPORAL_TLS_CLIENT_CERT_PATH)"},
		"unreadable cert": {args: []string{"--tls-cert", missing, "--tls-key", p.keyFile},
			want: "--tls-cert: open " + missing + ": no such file or directory"},
		"unreadable key": {args: []string{"--tls-cert", p.certFile, "--tls-key", missing},
			want: "--tls-key: open " + missing + ": no such file or directory"},
		"key of another certificate": {args: []string{"--tls-cert", p.certFile, "--tls-key", p.otherKeyFile},
			want: "--tls-cert " + p.certFile + " with --tls-key " + p.otherKeyFile + ": tls: private key does not match public key"},
		"unreadable CA": {args: []string{"--tls-ca", missing},
			want: "--tls-ca: open " + missing + ": no such file or directory"},
		"CA without certificates": {args: []string{"--tls-ca", p.keyFile},
			want: "--tls-ca: " + p.keyFile + " holds no PEM certificate"},
		"TLS settings with TLS off": {args: []string{"--tls=false", "--tls-ca", p.caFile},
			want: "--tls-ca ($TEMPORAL_TLS_SERVER_CA_CERT_PATH) is given but --tls ($TEMPORAL_TLS) turns TLS off"},
		"two API keys": {env: map[string]string{"TEMPORAL_API_KEY": "secret-one"}, args: []string{"--api-key-file", p.keyFile},
			want: "--api-key ($TEMPORAL_API_KEY) and --api-key-file both give an API key; use one"},
		"empty API key file": {args: []string{"--api-key-file", empty},
			want: "--api-key-file: " + empty + " is empty"},
		"unreadable API key file": {args: []string{"--api-key-file", missing},
			want: "--api-key-file: open " + missing + ": no such file or directory"},
		"bad codec key": {env: map[string]string{"ROLLOUT_CODEC_KEY": "c2hvcnQ="},
			want: "$ROLLOUT_CODEC_KEY: key 1 is 5 bytes, want 32 (AES-256)"},
	} {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := options(t, tc.args...)
			require.EqualError(t, err, tc.want)
			assert.NotContains(t, err.Error(), "secret-one", "an API key is never echoed")
		})
	}
}
