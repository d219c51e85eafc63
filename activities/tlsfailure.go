package activities

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
)

// TLS alerts a peer sends when it will not take our side of the handshake.
// Both kinds are configuration, on one side or the other: retrying does
// not change them. Other alerts (internal_error, a bad record MAC) may be
// passing trouble and stay transient.
var (
	// Our client certificate: missing, not signed by a CA it trusts,
	// expired, revoked, or not allowed in.
	clientCertificateAlerts = alertTexts(42, 43, 44, 45, 46, 48, 49, 116)
	// What we offer: no TLS version, cipher suite or key the peer accepts.
	// Under TLS 1.2, handshake_failure is also how a missing client
	// certificate is refused.
	handshakeAlerts = alertTexts(40, 70, 71)
)

// alertTexts are the errors crypto/tls reports for the alert codes (its
// alert type is unexported; AlertError has the same text).
func alertTexts(codes ...uint8) map[string]bool {
	texts := make(map[string]bool, len(codes))
	for _, code := range codes {
		texts[tls.AlertError(code).Error()] = true
	}
	return texts
}

// tlsFailure explains a TLS failure talking to peer ("the device", "the
// firmware server") that retrying will not fix, or returns "" when err is
// none: a handshake that the network cut or that timed out is a network
// error like any other.
func tlsFailure(peer string, err error) string {
	if verr, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "TLS: " + peer + "'s certificate " + certificateProblem(verr.Err)
	}
	if errors.Is(err, http.ErrSchemeMismatch) {
		return "TLS: " + peer + " answers plain HTTP at an https:// address"
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "remote error" && opErr.Err != nil {
		alert := opErr.Err.Error()
		switch {
		case clientCertificateAlerts[alert]:
			return "TLS: " + peer + " refused our client certificate (" + alert + "; see the worker's --device-cert)"
		case handshakeAlerts[alert]:
			return "TLS: " + peer + " refused the handshake (" + alert + "; it may require a client certificate, --device-cert)"
		}
	}
	return ""
}

// certificateProblem says what is wrong with a certificate we checked,
// with a hint where the worker's flags can fix it.
func certificateProblem(err error) string {
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return "is not signed by a CA we trust (" + err.Error() + "; give the worker the CA that signs it: --device-ca)"
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return "is not for the host we connected to (" + err.Error() + ")"
	}
	return "is not valid (" + err.Error() + ")"
}
