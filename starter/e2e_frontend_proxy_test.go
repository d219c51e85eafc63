//go:build e2e

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The dev server cannot terminate TLS, so the TLS tests put this proxy in
// front of it: a frontend as a production cluster or Temporal Cloud has
// one, that requires a client certificate from its CA (mTLS) and an API
// key, and forwards the raw gRPC frames otherwise untouched.

// frontendName is the only name on the proxy's certificate, so clients
// must be told it (--tls-server-name).
const frontendName = "frontend.rollout.test"

// frontendPKI is a CA made for one test, with certificates it signed.
type frontendPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

// pemPair are a certificate and its key, in PEM files.
type pemPair struct{ cert, key string }

func newFrontendPKI(t *testing.T) *frontendPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rollout test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &frontendPKI{dir: t.TempDir(), ca: ca, caKey: key}
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *frontendPKI) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
	return path
}

// issue signs a certificate for a client (its name is the common name) or
// a server (DNS names or IP addresses).
func (p *frontendPKI) issue(t *testing.T, name string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) pemPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dnsNames, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, p.ca, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pemPair{
		cert: p.write(t, name+".pem", "CERTIFICATE", der),
		key:  p.write(t, name+"-key.pem", "EC PRIVATE KEY", keyDER),
	}
}

func (p *frontendPKI) client(t *testing.T, name string) pemPair {
	return p.issue(t, name, x509.ExtKeyUsageClientAuth, nil, nil)
}

// frontendProxy counts the calls it forwarded, by client certificate.
type frontendProxy struct {
	addr    string
	backend *grpc.ClientConn
	apiKey  string
	mu      sync.Mutex
	calls   map[string]map[string]int // client name -> method -> calls
}

// startFrontendProxy serves TLS on a free port and forwards to backend.
func startFrontendProxy(t *testing.T, backend string, pki *frontendPKI, apiKey string) *frontendProxy {
	t.Helper()
	const maxMessage = 128 << 20 // as the Temporal SDK allows
	conn, err := grpc.NewClient(backend, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
	require.NoError(t, err)
	serverFiles := pki.issue(t, "frontend", x509.ExtKeyUsageServerAuth, []string{frontendName}, nil)
	cert, err := tls.LoadX509KeyPair(serverFiles.cert, serverFiles.key)
	require.NoError(t, err)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(pki.ca)

	p := &frontendProxy{backend: conn, apiKey: apiKey, calls: map[string]map[string]int{}}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs,
		})),
		grpc.ForceServerCodec(rawFrames{}),
		grpc.UnknownServiceHandler(p.forward),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = conn.Close()
	})
	return p
}

// forward checks the API key, then relays one call's frames both ways.
func (p *frontendProxy) forward(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	md, _ := metadata.FromIncomingContext(in.Context())
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+p.apiKey {
		return status.Error(codes.Unauthenticated, "invalid API key")
	}
	p.count(in.Context(), method)

	out := md.Copy()
	for key := range out {
		if strings.HasPrefix(key, ":") || key == "content-type" || key == "user-agent" {
			delete(out, key)
		}
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(in.Context(), out))
	defer cancel()
	upstream, err := p.backend.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(rawFrames{}))
	if err != nil {
		return err
	}
	go func() {
		for {
			f := new(rawFrame)
			if err := in.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					_ = upstream.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := upstream.SendMsg(f); err != nil {
				return
			}
		}
	}()
	if header, err := upstream.Header(); err == nil {
		_ = in.SendHeader(header)
	}
	for {
		f := new(rawFrame)
		err := upstream.RecvMsg(f)
		if err != nil {
			in.SetTrailer(upstream.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // the server's status, with its details
		}
		if err := in.SendMsg(f); err != nil {
			return err
		}
	}
}

func (p *frontendProxy) count(ctx context.Context, method string) {
	name := "?"
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			name = info.State.PeerCertificates[0].Subject.CommonName
		}
	}
	method = method[strings.LastIndex(method, "/")+1:]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls[name] == nil {
		p.calls[name] = map[string]int{}
	}
	p.calls[name][method]++
}

// callsFrom is how often the client with that certificate called method.
func (p *frontendProxy) callsFrom(client, method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[client][method]
}

// rawFrame is a gRPC message the proxy relays without decoding it.
type rawFrame struct{ data []byte }

type rawFrames struct{}

func (rawFrames) Marshal(v any) ([]byte, error) { return v.(*rawFrame).data, nil }

func (rawFrames) Unmarshal(data []byte, v any) error {
	v.(*rawFrame).data = bytes.Clone(data)
	return nil
}

func (rawFrames) Name() string { return "proto" }
