package activities

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// NewHTTPClient returns the worker's shared client: pooled keep-alive
// connections (devicemock serves every device from one host, real fleets
// have one host per device), TLS 1.2 or later, and no redirects: a
// device answers for itself, so a redirect is reported, not followed.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig = tlsConfig.Clone()
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
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
			WriteBufferSize:   64 << 10,
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// followingRedirects is the client for firmware and inventory servers,
// which may sit behind redirects (CDNs, release hosts); it shares the
// pooled transport.
func followingRedirects(c *http.Client) *http.Client {
	return &http.Client{Transport: c.Transport, Timeout: c.Timeout}
}
