package connection

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/worker/codec"
)

// securityFlags are TLS, mTLS, the API key and payload encryption. The
// environment variables are the ones Temporal's CLI and SDKs read.
func securityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{
			Name:    "tls",
			Usage:   "connect to Temporal over TLS; on by default when an API key or a --tls-* flag is given, --tls=false turns it off",
			EnvVars: []string{"TEMPORAL_TLS"},
		},
		&cli.StringFlag{
			Name:    "tls-cert",
			Usage:   "client certificate `FILE` (PEM) for mTLS; needs --tls-key",
			EnvVars: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH"},
		},
		&cli.StringFlag{
			Name:    "tls-key",
			Usage:   "client private key `FILE` (PEM) for mTLS; needs --tls-cert",
			EnvVars: []string{"TEMPORAL_TLS_CLIENT_KEY_PATH"},
		},
		&cli.StringFlag{
			Name:    "tls-ca",
			Usage:   "CA certificates `FILE` (PEM) the Temporal server's certificate must chain to (default: the system's)",
			EnvVars: []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
		},
		&cli.StringFlag{
			Name:    "tls-server-name",
			Usage:   "host `NAME` the server's certificate must be valid for (default: the host of --address)",
			EnvVars: []string{"TEMPORAL_TLS_SERVER_NAME"},
		},
		&cli.BoolFlag{
			Name:    "tls-disable-host-verification",
			Usage:   "accept a server certificate issued for another host name (its CA chain is still checked); for testing",
			EnvVars: []string{"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"},
		},
		&cli.StringFlag{
			Name:    "api-key",
			Usage:   "Temporal API `KEY` (as Temporal Cloud uses); turns TLS on. Prefer the environment or --api-key-file: a flag shows in the process list",
			EnvVars: []string{"TEMPORAL_API_KEY"},
		},
		&cli.StringFlag{
			Name:  "api-key-file",
			Usage: "read the Temporal API key from `FILE`",
		},
		&cli.StringFlag{
			Name:  "codec-key-file",
			Usage: "encrypt payloads with the AES-256 keys in `FILE`, base64, the first one encrypting (default: $" + codec.KeyEnv + "; neither: no encryption)",
		},
	}
}

// flagName names a flag with the environment variable it also reads, so
// an error says where the bad value may have come from.
func flagName(name string) string {
	for _, f := range Flags() {
		if f.Names()[0] != name {
			continue
		}
		if env, ok := f.(interface{ GetEnvVars() []string }); ok && len(env.GetEnvVars()) > 0 {
			return "--" + name + " ($" + env.GetEnvVars()[0] + ")"
		}
	}
	return "--" + name
}

// applySecurity sets TLS, the API key and the payload codec on opts.
func applySecurity(c *cli.Context, opts *client.Options) error {
	apiKey, err := readAPIKey(c)
	if err != nil {
		return err
	}
	if apiKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(apiKey)
	}
	if opts.ConnectionOptions.TLS, err = tlsConfig(c, apiKey != ""); err != nil {
		return err
	}
	cdc, err := codec.Load(c.String("codec-key-file"))
	if err != nil {
		return err
	}
	if cdc == nil {
		opts.DataConverter = converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec.NoKeys{})
		return nil
	}
	opts.DataConverter = converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), cdc)
	// Failure messages and stack traces go through the codec too: they
	// can quote URLs and device answers.
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          opts.DataConverter,
		EncodeCommonAttributes: true,
	})
	return nil
}

// encrypting says whether valid settings encrypt payloads.
func encrypting(c *cli.Context) bool {
	return c.String("codec-key-file") != "" || os.Getenv(codec.KeyEnv) != ""
}

// readAPIKey reads the key from --api-key ($TEMPORAL_API_KEY) or
// --api-key-file. It never appears in an error.
func readAPIKey(c *cli.Context) (string, error) {
	key, file := c.String("api-key"), c.String("api-key-file")
	if file == "" {
		return strings.TrimSpace(key), nil
	}
	if key != "" {
		return "", fmt.Errorf("%s and --api-key-file both give an API key; use one", flagName("api-key"))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--api-key-file: %v", err)
	}
	key = strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("--api-key-file: %s is empty", file)
	}
	return key, nil
}

// dialHint explains a connection cut without a reason. Over TLS 1.3 a
// server that refuses the client's certificate, or its absence, closes
// the connection after the handshake, and the client often sees only a
// broken pipe. A refused connection or a server certificate this client
// rejected (x509) speaks for itself.
func dialHint(opts client.Options, err error) string {
	conf := opts.ConnectionOptions.TLS
	var unavailable *serviceerror.Unavailable
	if conf == nil || !errors.As(err, &unavailable) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "x509:") {
		return ""
	}
	if len(conf.Certificates) == 0 {
		return "; TLS is on without a client certificate: if the server requires one (mTLS), give --tls-cert and --tls-key"
	}
	return "; if the server requires mTLS, check that it trusts the CA that signed --tls-cert"
}

// tlsConfig is nil for a plaintext connection. TLS is on when asked for,
// or implied by an API key or any TLS setting.
func tlsConfig(c *cli.Context, hasAPIKey bool) (*tls.Config, error) {
	given := tlsSetting(c)
	if c.IsSet("tls") && !c.Bool("tls") {
		if given != "" {
			return nil, fmt.Errorf("%s is given but %s turns TLS off", flagName(given), flagName("tls"))
		}
		return nil, nil
	}
	if !c.Bool("tls") && !hasAPIKey && given == "" {
		return nil, nil
	}

	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.String("tls-server-name")}
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	switch {
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("%s needs %s", flagName("tls-cert"), flagName("tls-key"))
	case keyFile != "" && certFile == "":
		return nil, fmt.Errorf("%s needs %s", flagName("tls-key"), flagName("tls-cert"))
	case certFile != "":
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if caFile := c.String("tls-ca"); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %v", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", caFile)
		}
	}
	if c.Bool("tls-disable-host-verification") {
		verifyChainOnly(conf)
	}
	return conf, nil
}

// tlsSetting is the first TLS setting given, which turns TLS on unless
// --tls=false says otherwise; "" when there is none.
func tlsSetting(c *cli.Context) string {
	for _, name := range []string{"tls-cert", "tls-key", "tls-ca", "tls-server-name"} {
		if c.String(name) != "" {
			return name
		}
	}
	if c.Bool("tls-disable-host-verification") {
		return "tls-disable-host-verification"
	}
	return ""
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert: %v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-key: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert %s with --tls-key %s: %v", certFile, keyFile, err)
	}
	return cert, nil
}

// verifyChainOnly checks the server's certificate against the CAs but not
// its host name.
func verifyChainOnly(conf *tls.Config) {
	roots := conf.RootCAs
	conf.InsecureSkipVerify = true
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, cert := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(cert)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}
