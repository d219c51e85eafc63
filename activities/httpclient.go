package activities

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// NewHTTPClient returns the worker's shared device client: pooled
// keep-alive connections (devicemock serves every device from one host,
// real fleets have one host per device), TLS 1.2 or later, and no
// redirects: a device answers for itself, so a redirect is reported, not
// followed.
//
// It speaks HTTP/1.1, also over TLS. A device takes one upload at a time,
// so HTTP/2's streams buy nothing, and the 64 KiB write buffer below only
// applies to HTTP/1.1. Under TLS 1.3 a device refuses a client certificate
// only after the handshake: HTTP/1.1 then reads the device's alert, where
// HTTP/2's extra writes often meet a reset that looks like a network error.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	var http1 http.Protocols
	http1.SetHTTP1(true)
	transport := newTransport(tlsConfig)
	transport.Protocols = &http1
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewSourceClient returns the client for firmware and inventory servers,
// which may sit behind redirects (CDNs, release hosts): see
// followingRedirects.
func NewSourceClient(tlsConfig *tls.Config) *http.Client {
	transport := newTransport(tlsConfig)
	transport.ForceAttemptHTTP2 = true
	return followingRedirects(&http.Client{Transport: transport})
}

func newTransport(tlsConfig *tls.Config) *http.Transport {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig = tlsConfig.Clone()
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Images stream through this buffer: 64 KiB writes instead of
		// the default 4 KiB cut syscalls per gigabyte sixteenfold.
		WriteBufferSize: 64 << 10,
	}
}

// maxRedirects is how many redirects a firmware or inventory fetch follows.
const maxRedirects = 5

// errRedirectRefused marks a redirect that a fetch does not follow; it
// does not get better by retrying.
var errRedirectRefused = errors.New("redirect refused")

// followingRedirects is c (its transport) following at most maxRedirects
// redirects, and never from https to plain http: an image or inventory
// asked for over TLS is not fetched where anyone on the path can change
// it. The SHA-256 in the spec guards the image; nothing guards an
// inventory but TLS.
func followingRedirects(c *http.Client) *http.Client {
	return &http.Client{Transport: c.Transport, Timeout: c.Timeout, CheckRedirect: checkSourceRedirect}
}

func checkSourceRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", errRedirectRefused, maxRedirects)
	}
	if req.URL.Scheme != "https" {
		for _, earlier := range via {
			if earlier.URL.Scheme == "https" {
				return fmt.Errorf("%w: from https to plain %s", errRedirectRefused, req.URL.Scheme)
			}
		}
	}
	return nil
}
