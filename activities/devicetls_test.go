package activities_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/devicemock/testpki"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// deviceTLS is how an in-process devicemock serves HTTPS.
type deviceTLS struct {
	hosts      []string    // the server certificate's names; 127.0.0.1 when empty
	clientCA   *testpki.CA // when set, client certificates signed by it are required
	maxVersion uint16      // 0: TLS 1.3
}

// startTLSFleet serves a devicemock fleet over HTTPS with a certificate
// from ca.
func startTLSFleet(t *testing.T, cfg fleet.Config, ca *testpki.CA, opts deviceTLS) (*fleet.Fleet, *httptest.Server) {
	t.Helper()
	if cfg.Devices == 0 {
		cfg.Devices = 1
	}
	if cfg.Version == "" {
		cfg.Version = oldVersion
	}
	f, err := fleet.New(cfg)
	require.NoError(t, err)
	if len(opts.hosts) == 0 {
		opts.hosts = []string{"127.0.0.1"}
	}
	srv := httptest.NewUnstartedServer(f.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, opts.hosts...).TLS}, MaxVersion: opts.maxVersion}
	if opts.clientCA != nil {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = opts.clientCA.Pool()
	}
	srv.Config.ErrorLog = quietServerLog
	srv.StartTLS()
	t.Cleanup(srv.Close)
	require.True(t, strings.HasPrefix(srv.URL, "https://"))
	return f, srv
}

// workerTLS is the client side as the worker sets it up: the given roots
// (nil: the system's), and a client certificate offered whatever CAs the
// device says it accepts.
func workerTLS(roots *x509.CertPool, cert *testpki.Pair) *tls.Config {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	return cfg
}

func TestPushAndVerifyOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "fleet CA")
	im := newImage(t, 70, 1<<20+3)
	_, url := writeImage(t, im)
	f, srv := startTLSFleet(t, fleet.Config{Reboot: 100 * time.Millisecond, Token: "s3cret"}, ca, deviceTLS{clientCA: ca})
	client := activities.NewHTTPClient(workerTLS(ca.Pool(), ca.Client(t, "worker")))
	addr := deviceURL(srv, firstDevice)

	res := newHarness(t, withClient(client), withToken("s3cret")).mustPush(pushRequest(addr, im.firmware(url)))
	require.Equal(t, workflows.PushResult{PreviousVersion: oldVersion, BytesSent: im.size}, res)
	got, err := newHarness(t, withClient(client)).verify(verifyRequest(addr, 30*time.Second))
	require.NoError(t, err)
	require.Equal(t, targetVersion, got.Version)
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Installs)
	require.EqualValues(t, 1, st.Uploads)
	require.Equal(t, im.size, st.Bytes)
}

// A certificate problem fails the device at once, push and verify alike,
// with the reason, and no byte of the image leaves.
func TestDeviceTLSFailuresArePermanent(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "fleet CA")
	stranger := testpki.NewCA(t, "another CA")
	worker := ca.Client(t, "worker")
	im := newImage(t, 71, 64<<10)
	_, url := writeImage(t, im)
	for _, tc := range []struct {
		name   string
		server deviceTLS
		client *tls.Config
		want   []string
	}{
		{"CA not trusted", deviceTLS{}, workerTLS(stranger.Pool(), nil),
			[]string{"TLS: the device's certificate is not signed by a CA we trust", "unknown authority", "--device-ca"}},
		{"system roots only", deviceTLS{}, workerTLS(nil, nil),
			[]string{"TLS: the device's certificate is not signed by a CA we trust", "unknown authority"}},
		{"certificate for another host", deviceTLS{hosts: []string{"device.example"}}, workerTLS(ca.Pool(), nil),
			[]string{"TLS: the device's certificate is not for the host we connected to", "127.0.0.1"}},
		{"certificate for another IP", deviceTLS{hosts: []string{"127.0.0.2"}}, workerTLS(ca.Pool(), nil),
			[]string{"TLS: the device's certificate is not for the host we connected to", "valid for 127.0.0.2, not 127.0.0.1"}},
		{"no client certificate", deviceTLS{clientCA: ca}, workerTLS(ca.Pool(), nil),
			[]string{"TLS: the device refused our client certificate", "certificate required", "--device-cert"}},
		{"no client certificate, TLS 1.2", deviceTLS{clientCA: ca, maxVersion: tls.VersionTLS12}, workerTLS(ca.Pool(), nil),
			[]string{"TLS: the device refused the handshake", "handshake failure", "--device-cert"}},
		{"client certificate of another CA", deviceTLS{clientCA: ca}, workerTLS(ca.Pool(), stranger.Client(t, "intruder")),
			[]string{"TLS: the device refused our client certificate", "unknown certificate authority"}},
		{"client certificate for another device PKI", deviceTLS{clientCA: stranger}, workerTLS(ca.Pool(), worker),
			[]string{"TLS: the device refused our client certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := startTLSFleet(t, fleet.Config{}, ca, tc.server)
			client := activities.NewHTTPClient(tc.client)
			addr := deviceURL(srv, firstDevice)

			_, err := newHarness(t, withClient(client)).push(pushRequest(addr, im.firmware(url)))
			ae := requirePermanent(t, err, workflows.ErrDeviceTLS, append([]string{"probe: "}, tc.want...)...)
			checkReason(t, tc.name, ae.Message())
			_, err = newHarness(t, withClient(client)).verify(verifyRequest(addr, time.Hour))
			requirePermanent(t, err, workflows.ErrDeviceTLS, append([]string{"verify: "}, tc.want...)...)
			st := deviceStats(t, f, firstDevice)
			require.Zero(t, st.Uploads, "no request reached the device")
			require.Equal(t, oldVersion, st.Version)
		})
	}
}

func TestPlainHTTPDeviceAtAnHTTPSAddress(t *testing.T) {
	t.Parallel()
	im := newImage(t, 72, 1<<10)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{})
	addr := strings.Replace(deviceURL(srv, firstDevice), "http://", "https://", 1)
	_, err := newHarness(t).push(pushRequest(addr, im.firmware(url)))
	requirePermanent(t, err, workflows.ErrDeviceTLS, "probe: TLS: the device answers plain HTTP at an https:// address")
	require.Zero(t, deviceStats(t, f, firstDevice).Uploads)
}

// A handshake the network cuts is no verdict on certificates: it is
// retried like any other connection failure.
func TestCutHandshakeIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			var hello [64]byte
			_, _ = conn.Read(hello[:]) // the start of the ClientHello, then gone
			_ = conn.Close()
		}
	}()
	im := newImage(t, 73, 1<<10)
	_, url := writeImage(t, im)
	client := activities.NewHTTPClient(workerTLS(testpki.NewCA(t, "fleet CA").Pool(), nil))
	_, err = newHarness(t, withClient(client)).push(pushRequest("https://"+ln.Addr().String()+"/devices/x", im.firmware(url)))
	requireTransient(t, err, "probe: device unreachable")
}

func TestFirmwareAndInventoryServersOverTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "fleet CA")
	im := newImage(t, 74, 256<<10)
	fw := &firmwareServer{}
	fw.Server = httptest.NewUnstartedServer(fw.handler(im))
	fw.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS}}
	fw.Config.ErrorLog = quietServerLog
	fw.StartTLS()
	t.Cleanup(fw.Close)
	f, devices := startTLSFleet(t, fleet.Config{Devices: 3}, ca, deviceTLS{clientCA: ca})
	worker := ca.Client(t, "worker")
	deviceClient := activities.NewHTTPClient(workerTLS(ca.Pool(), worker))

	t.Run("trusted", func(t *testing.T) {
		sources := activities.NewSourceClient(workerTLS(ca.Pool(), worker))
		inventory, err := activities.LoadInventory(context.Background(), sources, devices.URL+"/_fleet/inventory")
		require.NoError(t, err)
		require.Len(t, inventory, 3)
		require.Equal(t, devices.URL+"/devices/dev-00002", inventory[1].Address, "devicemock lists https addresses")

		h := newHarness(t, withClient(deviceClient), withSources(sources))
		res := h.mustPush(pushRequest(inventory[0].Address, im.firmware(fw.url())))
		require.Equal(t, im.size, res.BytesSent)
		require.EqualValues(t, 1, deviceStats(t, f, inventory[0].ID).Uploads)
	})
	t.Run("untrusted", func(t *testing.T) {
		sources := activities.NewSourceClient(workerTLS(testpki.NewCA(t, "another CA").Pool(), worker))
		h := newHarness(t, withClient(deviceClient), withSources(sources))
		_, err := h.push(pushRequest(deviceURL(devices, "dev-00003"), im.firmware(fw.url())))
		requirePermanent(t, err, workflows.ErrFirmwareSource, "firmware "+fw.url()+": TLS: the firmware server's certificate is not signed by a CA we trust")
		require.Zero(t, deviceStats(t, f, "dev-00003").Uploads)

		_, err = h.list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: devices.URL + "/_fleet/inventory", Limit: 10})
		requirePermanent(t, err, workflows.ErrInventory, "TLS: the inventory server's certificate is not signed by a CA we trust")
	})
}
