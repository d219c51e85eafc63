package fleet

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
)

// Handler serves the device protocol under /devices/{id}/ and the fleet's
// own /_fleet/inventory and /_fleet/stats.
func (f *Fleet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /devices/{id}/update", f.serveUpdate)
	mux.HandleFunc("HEAD /devices/{id}/update", noBody(f.serveUploadOffset))
	mux.HandleFunc("GET /devices/{id}/version", noBody(f.serveVersion))
	mux.HandleFunc("GET /devices/{id}/health", noBody(f.serveHealth))
	mux.HandleFunc("GET /_fleet/inventory", noBody(f.serveInventory))
	mux.HandleFunc("GET /_fleet/stats", noBody(f.serveStats))
	return mux
}

// lookup finds the addressed device, answering 404 when there is none.
func (f *Fleet) lookup(w http.ResponseWriter, r *http.Request) *device {
	d := f.byID[r.PathValue("id")]
	if d == nil {
		writeError(w, http.StatusNotFound, "unknown device")
	}
	return d
}

// reach plays the network between client and device: an offline device
// hangs up, any other answers after the configured latency. It reports
// whether the request should go on.
func (f *Fleet) reach(w http.ResponseWriter, r *http.Request, d *device) bool {
	if f.offline(d) {
		hangUp(w)
		return false
	}
	return f.latency == 0 || f.clock.Sleep(r.Context(), f.latency) == nil
}

// hangUp closes the connection without a reply, as an unreachable or
// crashing device would.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): aborting still gives the client no reply.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (f *Fleet) authorized(r *http.Request) bool {
	if f.token == "" {
		return true
	}
	want := "Bearer " + f.token
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// versionReply is a struct, not a map, to keep the documented field order.
type versionReply struct {
	Version string `json:"version"`
	State   string `json:"state"`
}

// serveVersion answers the running version; its state is "receiving"
// while an upload's body is being read, else "idle".
func (f *Fleet) serveVersion(w http.ResponseWriter, r *http.Request) {
	f.serveIfIdle(w, r, func(d *device, version string) any {
		if d.receivingNow() {
			return versionReply{Version: version, State: "receiving"}
		}
		return versionReply{Version: version, State: "idle"}
	})
}

func (f *Fleet) serveHealth(w http.ResponseWriter, r *http.Request) {
	f.serveIfIdle(w, r, func(*device, string) any {
		return map[string]string{"status": "ok"}
	})
}

// serveIfIdle answers 200 with reply(running version) unless the device is
// unknown, offline, or installing (503).
func (f *Fleet) serveIfIdle(w http.ResponseWriter, r *http.Request, reply func(d *device, version string) any) {
	d := f.lookup(w, r)
	if d == nil || !f.reach(w, r, d) {
		return
	}
	version, installing := d.state(f.clock.Now())
	if installing {
		writeError(w, http.StatusServiceUnavailable, "installing")
		return
	}
	writeJSON(w, http.StatusOK, reply(d, version))
}

// serveInventory lists the devices at the address the client asked, in
// the scheme it asked with.
func (f *Fleet) serveInventory(w http.ResponseWriter, r *http.Request) {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	writeJSON(w, http.StatusOK, f.Inventory(scheme+r.Host))
}

func (f *Fleet) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, f.Stats())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// An encoding error here means the client went away; nothing to tell it.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, map[string]string{"error": message})
}
