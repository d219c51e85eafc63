package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

// signatureHeader carries the image's signature (firmware.signature).
const signatureHeader = "X-Firmware-Signature"

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
	up, headersOK := f.readUploadHeaders(r)
	if f.imageTooLarge(w, r, up.offset) {
		return
	}

	verdict, from := d.admit(f.clock.Now(), up, headersOK)
	switch verdict {
	case refuseInstalling:
		writeError(w, http.StatusServiceUnavailable, "installing")
	case refuseReceiving:
		writeError(w, http.StatusServiceUnavailable, "receiving another upload")
	case refuseHeaders:
		writeError(w, http.StatusBadRequest, "X-Firmware-Version and X-Firmware-SHA256 (64 hex digits) are required; Upload-Offset, when sent, is a byte count; X-Firmware-Signature, when checked, is a base64 ed25519 signature")
	case refuseUnsigned:
		writeError(w, http.StatusForbidden, "X-Firmware-Signature is required: this device installs only signed firmware")
	case refuseForbidden:
		writeError(w, http.StatusForbidden, "upload refused")
	case refuseUnavailable:
		writeError(w, http.StatusServiceUnavailable, "temporarily unavailable")
	case refuseBusy:
		w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
		writeError(w, http.StatusTooManyRequests, "busy, try again later")
	case alreadyInstalled:
		writeJSON(w, http.StatusOK, map[string]string{"status": "already-installed"})
	case conflictingOffset:
		w.Header().Set(uploadOffsetHeader, strconv.FormatInt(from.offset, 10))
		writeError(w, http.StatusConflict, fmt.Sprintf("Upload-Offset %d does not match the %d bytes this device holds of that image", up.offset, from.offset))
	case dropMidStream:
		f.dropMidStream(w, r, d, up, from)
	case receiveBody:
		f.receive(w, r, d, up, from)
	}
}

// uploadHeaders are what a device takes from an upload's headers.
type uploadHeaders struct {
	version   string
	checksum  string // lower-case hex
	offset    int64  // Upload-Offset: where in the image the body starts
	signature []byte // X-Firmware-Signature, decoded when the device checks it
	unsigned  bool   // no X-Firmware-Signature to a device that requires one
}

// readUploadHeaders reports the upload's headers and whether they are
// well-formed. A device without resumable uploads does not know
// Upload-Offset and takes every body as a whole image.
func (f *Fleet) readUploadHeaders(r *http.Request) (uploadHeaders, bool) {
	up := uploadHeaders{
		version:  r.Header.Get("X-Firmware-Version"),
		checksum: strings.ToLower(r.Header.Get("X-Firmware-SHA256")),
	}
	ok := up.version != "" && isSHA256Hex(up.checksum)
	if raw := r.Header.Get(uploadOffsetHeader); f.resumable && raw != "" {
		offset, err := strconv.ParseInt(raw, 10, 64)
		ok = ok && err == nil && offset >= 0
		up.offset = max(offset, 0)
	}
	raw := r.Header.Get(signatureHeader)
	up.unsigned = f.signed && raw == ""
	if len(f.keys) > 0 && raw != "" {
		sig, err := signing.DecodeSignature(raw)
		ok = ok && err == nil
		up.signature = sig
	}
	return up, ok
}

// receive takes an upload's body and answers once the device is done
// receiving it, so that the client may send again right after the answer.
func (f *Fleet) receive(w http.ResponseWriter, r *http.Request, d *device, up uploadHeaders, from partialUpload) {
	code, why := f.take(w, r, d, up, from)
	d.endReceiving()
	if code == http.StatusAccepted {
		writeJSON(w, code, map[string]string{"status": "accepted"})
		return
	}
	writeError(w, code, why)
}

// take streams the image through SHA-256, continuing the partial it
// resumes, and when the whole image matches (and, with keys, its
// signature verifies), starts the install. A body that ends early installs
// nothing and is kept as a partial.
func (f *Fleet) take(w http.ResponseWriter, r *http.Request, d *device, up uploadHeaders, from partialUpload) (code int, why string) {
	hash := from.hash()
	n, err := io.Copy(hash, f.body(w, r, d, from.offset))
	if overImageLimit(err) {
		return http.StatusRequestEntityTooLarge, f.tooLarge()
	}
	if err != nil {
		f.keepPartial(d, up, from.offset+n, hash)
		return http.StatusBadRequest, "incomplete upload: " + err.Error()
	}
	d.forgetPartial(up.checksum)
	received := hex.EncodeToString(hash.Sum(nil))
	if received != up.checksum {
		return http.StatusUnprocessableEntity, "checksum mismatch"
	}
	if len(f.keys) > 0 && !f.keys.Verify(up.version, received, up.signature) {
		return http.StatusUnprocessableEntity, "firmware signature does not verify"
	}
	if !d.beginInstall(f.clock.Now(), up.version, f.reboot) {
		return http.StatusServiceUnavailable, "installing"
	}
	return http.StatusAccepted, ""
}

// dropMidStream reads about half the upload, keeps it as a partial, then
// cuts the connection.
func (f *Fleet) dropMidStream(w http.ResponseWriter, r *http.Request, d *device, up uploadHeaders, from partialUpload) {
	half := int64(dropReadUnknownLength)
	if r.ContentLength >= 0 {
		half = r.ContentLength / 2
	}
	hash := from.hash()
	// Whatever the read returns, the device is going down.
	n, _ := io.CopyN(hash, f.body(w, r, d, from.offset), half)
	f.keepPartial(d, up, from.offset+n, hash)
	d.endReceiving()
	hangUp(w)
}

// body is the request body as the device reads it: at most the image
// limit less the offset it resumes from, each read given a stall deadline,
// counted in the device's bytes and, with a bandwidth set, no faster than
// that.
func (f *Fleet) body(w http.ResponseWriter, r *http.Request, d *device, offset int64) io.Reader {
	limited := http.MaxBytesReader(w, r.Body, max(0, f.maxImage-offset))
	timed := stallDeadline{r: limited, rc: http.NewResponseController(w), stall: f.uploadStall}
	var body io.Reader = &countingReader{r: timed, count: &d.bytes}
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
