package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/worker/codec"
)

// codecTokenEnv holds the codec endpoint's bearer token when no token
// file is given.
const codecTokenEnv = "ROLLOUT_CODEC_AUTH_TOKEN"

// minCodecTokenLength keeps a guessable token from guarding every payload.
const minCodecTokenLength = 16

func codecEndpointFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "codec-listen",
			Usage: "serve the codec endpoint the Web UI and temporal CLI decrypt payloads with (POST /{namespace}/decode and /encode) on `HOST:PORT`; needs the codec keys and a token; off when empty",
		},
		&cli.StringFlag{
			Name:  "codec-auth-token-file",
			Usage: "bearer tokens the codec endpoint accepts, one a line, in `FILE` (default: $" + codecTokenEnv + ")",
		},
		&cli.StringSliceFlag{
			Name:  "codec-cors-origin",
			Usage: "Web UI `ORIGIN` (scheme://host[:port]) whose pages may call the codec endpoint (repeatable)",
		},
		&cli.StringFlag{
			Name:  "codec-tls-cert",
			Usage: "serve the codec endpoint over HTTPS with the certificate in `FILE` (PEM); needs --codec-tls-key",
		},
		&cli.StringFlag{
			Name:  "codec-tls-key",
			Usage: "private key `FILE` (PEM) of --codec-tls-cert",
		},
	}
}

// codecEndpoint is the checked configuration of --codec-listen.
type codecEndpoint struct {
	addr    string
	handler http.Handler
	tls     *tls.Config
}

// newCodecEndpoint checks the codec endpoint flags; nil when it is off.
func newCodecEndpoint(c *cli.Context, logger *slog.Logger) (*codecEndpoint, error) {
	addr := c.String("codec-listen")
	if addr == "" {
		for _, name := range []string{"codec-auth-token-file", "codec-cors-origin", "codec-tls-cert", "codec-tls-key"} {
			if c.IsSet(name) {
				return nil, fmt.Errorf("--%s needs --codec-listen", name)
			}
		}
		return nil, nil
	}
	cdc, err := codec.Load(c.String("codec-key-file"))
	if err != nil {
		return nil, err
	}
	if cdc == nil {
		return nil, fmt.Errorf("--codec-listen needs the codec keys: $%s or --codec-key-file", codec.KeyEnv)
	}
	tokens, err := codecTokens(c.String("codec-auth-token-file"))
	if err != nil {
		return nil, err
	}
	var origins []string
	for _, origin := range c.StringSlice("codec-cors-origin") {
		if err := checkOrigin(origin); err != nil {
			return nil, err
		}
		// Browsers send the origin without a trailing slash.
		origins = append(origins, strings.TrimSuffix(origin, "/"))
	}
	e := &codecEndpoint{addr: addr, handler: codec.Handler(cdc, tokens, origins, logger)}
	certFile, keyFile := c.String("codec-tls-cert"), c.String("codec-tls-key")
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("--codec-tls-cert and --codec-tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--codec-tls-cert/--codec-tls-key: %v", err)
		}
		e.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	return e, nil
}

// codecTokens reads the endpoint's tokens. Several let each operator or
// tool have its own, and let a token rotate without downtime.
func codecTokens(file string) ([]string, error) {
	source, text := "$"+codecTokenEnv, os.Getenv(codecTokenEnv)
	if file != "" {
		if text != "" {
			return nil, fmt.Errorf("give the codec endpoint's token in $%s or --codec-auth-token-file, not both", codecTokenEnv)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--codec-auth-token-file: %v", err)
		}
		source, text = "--codec-auth-token-file "+file, string(b)
	}
	var tokens []string
	for line := range strings.Lines(text) {
		token := strings.TrimSpace(line)
		if token == "" {
			continue
		}
		if len(token) < minCodecTokenLength {
			return nil, fmt.Errorf("%s: token %d is shorter than %d characters (make one with: openssl rand -hex 32)", source, len(tokens)+1, minCodecTokenLength)
		}
		tokens = append(tokens, token)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("--codec-listen needs a bearer token in --codec-auth-token-file or $%s: the endpoint decrypts payloads for whoever calls it", codecTokenEnv)
	}
	return tokens, nil
}

func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("--codec-cors-origin %q must be scheme://host[:port], e.g. https://temporal-ui.example.com", origin)
	}
	return nil
}

// serve listens until stop is called.
func (e *codecEndpoint) serve(logger *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", e.addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: e.handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: e.tls}
	scheme := "http"
	if e.tls != nil {
		scheme = "https"
		go func() { _ = srv.ServeTLS(l, "", "") }()
	} else {
		go func() { _ = srv.Serve(l) }()
		if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			logger.Warn("the codec endpoint serves plain HTTP beyond loopback: tokens and decrypted payloads cross the network in clear; use --codec-tls-cert")
		}
	}
	logger.Info("serving the codec endpoint", "url", scheme+"://"+l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
