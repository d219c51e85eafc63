package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
)

// dropReadUnknownLength is how much a drop device reads of an upload without
// Content-Length before cutting it.
const dropReadUnknownLength = 64 << 10

// serveUpdate receives a firmware upload. The order of checks is part of the
// protocol contract: see admit for the ones that depend on device state.
func (f *Fleet) serveUpdate(w http.ResponseWriter, r *http.Request) {
	d := f.lookup(w, r)
	if d == nil {
		return
	}
	d.uploads.Add(1)
	if !f.reach(w, r, d) {
		return
	}
	if !f.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	version := r.Header.Get("X-Firmware-Version")
	checksum := strings.ToLower(r.Header.Get("X-Firmware-SHA256"))
	headersOK := version != "" && isSHA256Hex(checksum)

	switch d.admit(f.clock.Now(), version, headersOK) {
	case refuseInstalling:
		writeError(w, http.StatusServiceUnavailable, "installing")
	case refuseHeaders:
		writeError(w, http.StatusBadRequest, "X-Firmware-Version and X-Firmware-SHA256 (64 hex digits) are required")
	case refuseForbidden:
		writeError(w, http.StatusForbidden, "upload refused")
	case refuseUnavailable:
		writeError(w, http.StatusServiceUnavailable, "temporarily unavailable")
	case alreadyInstalled:
		writeJSON(w, http.StatusOK, map[string]string{"status": "already-installed"})
	case dropMidStream:
		f.dropMidStream(w, r, d)
	case receiveBody:
		f.receive(w, r, d, version, checksum)
	}
}

// receive streams the image through SHA-256 and, when it matches, starts the
// install. An incomplete body installs nothing.
func (f *Fleet) receive(w http.ResponseWriter, r *http.Request, d *device, version, checksum string) {
	hash := sha256.New()
	if _, err := io.Copy(hash, f.body(r, d)); err != nil {
		writeError(w, http.StatusBadRequest, "incomplete upload: "+err.Error())
		return
	}
	if hex.EncodeToString(hash.Sum(nil)) != checksum {
		writeError(w, http.StatusUnprocessableEntity, "checksum mismatch")
		return
	}
	if !d.beginInstall(f.clock.Now(), version, f.reboot) {
		writeError(w, http.StatusServiceUnavailable, "installing")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// dropMidStream reads about half the upload, then cuts the connection.
func (f *Fleet) dropMidStream(w http.ResponseWriter, r *http.Request, d *device) {
	half := int64(dropReadUnknownLength)
	if r.ContentLength >= 0 {
		half = r.ContentLength / 2
	}
	// Whatever the read returns, the device is going down.
	_, _ = io.CopyN(io.Discard, f.body(r, d), half)
	hangUp(w)
}

// body is the request body as the device reads it: counted in the device's
// bytes and, with a bandwidth set, no faster than that.
func (f *Fleet) body(r *http.Request, d *device) io.Reader {
	var body io.Reader = &countingReader{r: r.Body, count: &d.bytes}
	if f.bandwidth > 0 {
		body = newThrottledReader(r.Context(), body, f.bandwidth, f.clock)
	}
	return body
}

func isSHA256Hex(s string) bool {
	if len(s) != hex.EncodedLen(sha256.Size) {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
