package fleet

import (
	"crypto/sha256"
	"encoding"
	"hash"
	"net/http"
	"strconv"
	"strings"
)

// uploadOffsetHeader carries, on HEAD answers, 409 answers and resumed
// uploads, how many bytes of the image the device holds.
const uploadOffsetHeader = "Upload-Offset"

// partialUpload is what a device keeps of an upload that ended early. Not
// the bytes: only how many there were and the SHA-256 state after them, so
// that 10,000 devices with partials cost about 250 bytes each, and the whole
// image can still be checked when the rest arrives.
type partialUpload struct {
	checksum string // the digest the upload announced, lower-case hex
	version  string
	offset   int64  // bytes received
	state    []byte // the SHA-256 state after offset bytes (MarshalBinary)
}

// hash is a SHA-256 that has already taken the partial's bytes; for the zero
// partial, a fresh one.
func (p partialUpload) hash() hash.Hash {
	h := sha256.New()
	if p.offset > 0 {
		// The state comes from MarshalBinary of the same hash, so it restores.
		_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(p.state)
	}
	return h
}

// heldLocked is the partial the device holds of the image with checksum (and
// version, when given); the zero partial when it holds none.
func (d *device) heldLocked(checksum, version string) partialUpload {
	p := d.partial
	if p == nil || p.checksum != checksum || (version != "" && p.version != version) {
		return partialUpload{}
	}
	return *p
}

// keepPartial remembers an upload that ended early after offset bytes of the
// image, replacing whatever partial the device held. Devices without
// resumable uploads keep nothing.
func (f *Fleet) keepPartial(d *device, up uploadHeaders, offset int64, h hash.Hash) {
	if !f.resumable {
		return
	}
	var kept *partialUpload
	if state, err := h.(encoding.BinaryMarshaler).MarshalBinary(); err == nil && offset > 0 {
		kept = &partialUpload{checksum: up.checksum, version: up.version, offset: offset, state: state}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.partial = kept
}

// forgetPartial drops the partial of an image once an upload of it arrived
// whole, whether it then installs or is refused.
func (d *device) forgetPartial(checksum string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.partial != nil && d.partial.checksum == checksum {
		d.partial = nil
	}
}

// serveUploadOffset answers HEAD /update: 200 with Upload-Offset, the bytes
// the device holds of the image named by X-Firmware-SHA256 (0 for none). A
// device without resumable uploads answers 405, as one that predates them.
func (f *Fleet) serveUploadOffset(w http.ResponseWriter, r *http.Request) {
	d := f.lookup(w, r)
	if d == nil || !f.reach(w, r, d) {
		return
	}
	if !f.resumable {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "resumable uploads are not supported")
		return
	}
	if !f.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	checksum := strings.ToLower(r.Header.Get("X-Firmware-SHA256"))
	if !isSHA256Hex(checksum) {
		writeError(w, http.StatusBadRequest, "X-Firmware-SHA256 (64 hex digits) is required")
		return
	}
	d.mu.Lock()
	held := d.heldLocked(checksum, r.Header.Get("X-Firmware-Version"))
	d.mu.Unlock()
	w.Header().Set(uploadOffsetHeader, strconv.FormatInt(held.offset, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
