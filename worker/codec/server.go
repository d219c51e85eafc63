package codec

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"slices"

	"go.temporal.io/sdk/converter"
)

// MaxRequestBytes bounds a request to the codec endpoint.
const MaxRequestBytes = 16 << 20

// Handler is the codec endpoint the Web UI and the temporal CLI call to
// show payloads decrypted: POST .../decode and .../encode, under any
// prefix such as /{namespace}/. A request must carry
// "Authorization: Bearer T" with one of tokens, or it is refused with 401:
// whoever may call it reads every payload. Browsers get CORS headers only
// for the Web UI origins listed.
func Handler(c *Codec, tokens, origins []string, logger *slog.Logger) http.Handler {
	codecs := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			if !slices.Contains(origins, origin) {
				logger.Warn("codec endpoint refused a request from an origin not allowed", "origin", origin, "remote", r.RemoteAddr)
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			allowCORS(w.Header(), origin)
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if !authorized(r.Header.Get("Authorization"), tokens) {
			logger.Warn("codec endpoint refused a request without a valid token", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="codec"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		codecs.ServeHTTP(w, r)
	})
}

// allowCORS lets the Web UI's page call the endpoint with the user's
// Authorization header or cookies.
func allowCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
	h.Add("Vary", "Origin")
}

// authorized compares in constant time, so timing does not reveal a token.
func authorized(header string, tokens []string) bool {
	ok := false
	for _, token := range tokens {
		if subtle.ConstantTimeCompare([]byte(header), []byte("Bearer "+token)) == 1 {
			ok = true
		}
	}
	return ok
}
