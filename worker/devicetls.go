package main

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

// allowInsecureFlag must come with --insecure-skip-verify, so that turning
// off certificate checks takes two deliberate flags, not one stray one.
const allowInsecureFlag = "allow-insecure-for-testing"

func deviceTLSFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name: "device-ca",
			Usage: "trust only the CA certificates of the PEM bundle `FILE` for https:// devices (default: the system roots); " +
				"firmware and inventory servers trust them besides the system roots",
		},
		&cli.StringFlag{Name: "device-cert", Usage: "present the PEM client certificate `FILE` to devices that ask for one (mTLS); needs --device-key"},
		&cli.StringFlag{Name: "device-key", Usage: "the PEM private key `FILE` of --device-cert"},
		&cli.BoolFlag{
			Name:  "insecure-skip-verify",
			Usage: "do not verify device certificates (tests only: refused without --" + allowInsecureFlag + ")",
		},
		&cli.BoolFlag{Name: allowInsecureFlag, Usage: "confirm that --insecure-skip-verify is for a test setup"},
	}
}

// deviceTLS is the worker's TLS configuration for devices and for the
// firmware and inventory servers.
type deviceTLS struct {
	devices *tls.Config
	sources *tls.Config
}

// loadDeviceTLS reads the TLS flags and their files. Errors are one line
// naming the flag.
func loadDeviceTLS(c *cli.Context, logger *slog.Logger) (deviceTLS, error) {
	caFile, certFile, keyFile := c.String("device-ca"), c.String("device-cert"), c.String("device-key")
	insecure := c.Bool("insecure-skip-verify")
	switch {
	case (certFile == "") != (keyFile == ""):
		return deviceTLS{}, errors.New("--device-cert and --device-key go together: give both or neither")
	case insecure && !c.Bool(allowInsecureFlag):
		return deviceTLS{}, fmt.Errorf("--insecure-skip-verify turns off device certificate checks and is refused unless --%s says this is a test", allowInsecureFlag)
	case !insecure && c.Bool(allowInsecureFlag):
		return deviceTLS{}, fmt.Errorf("--%s only goes with --insecure-skip-verify", allowInsecureFlag)
	}
	devices := &tls.Config{MinVersion: tls.VersionTLS12}
	sources := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return deviceTLS{}, fmt.Errorf("--device-ca: %v", pathError(err))
		}
		if devices.RootCAs = x509.NewCertPool(); !devices.RootCAs.AppendCertsFromPEM(pem) {
			return deviceTLS{}, fmt.Errorf("--device-ca: %s holds no PEM certificate", caFile)
		}
		sources.RootCAs, err = x509.SystemCertPool()
		if err != nil {
			sources.RootCAs = x509.NewCertPool()
		}
		sources.RootCAs.AppendCertsFromPEM(pem)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return deviceTLS{}, fmt.Errorf("--device-cert/--device-key: %v", pathError(err))
		}
		// Devices get it whenever they ask, so that one that does not take
		// its CA says so; other servers only when they ask for its CA.
		devices.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		sources.Certificates = []tls.Certificate{cert}
	}
	if insecure {
		devices.InsecureSkipVerify = true
		devices.VerifyConnection = func(cs tls.ConnectionState) error {
			logger.Warn("device certificate NOT verified (--insecure-skip-verify)", unverifiedPeer(cs)...)
			return nil
		}
		logger.Warn("--insecure-skip-verify: device certificates are NOT verified; anyone on the network path can pose as a device. For tests only.")
	}
	logger.Info("device TLS", "ca", cmp.Or(caFile, "system roots"), "clientCertificate", certFile != "", "verify", !insecure)
	return deviceTLS{devices: devices, sources: sources}, nil
}

// unverifiedPeer names what a connection we did not verify claims to be:
// its server name (not sent for IP addresses) and its certificate.
func unverifiedPeer(cs tls.ConnectionState) []any {
	var attrs []any
	if cs.ServerName != "" {
		attrs = append(attrs, "server", cs.ServerName)
	}
	if len(cs.PeerCertificates) > 0 {
		cert := cs.PeerCertificates[0]
		attrs = append(attrs, "subject", cert.Subject.String(), "issuer", cert.Issuer.String())
	}
	return attrs
}

// pathError keeps "open FILE: no such file" from repeating the operation
// after the flag name.
func pathError(err error) error {
	if pathErr, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("%s: %w", pathErr.Path, pathErr.Err)
	}
	return err
}
