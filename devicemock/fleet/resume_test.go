package fleet

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// piece is a POST /update of img[from:to] that announces the whole image:
// Upload-Offset from (none when from is 0) and Content-Length of the rest.
// When to stops short of the end, the body breaks off there, as a cut
// connection does.
type piece struct {
	device   string
	img      []byte
	from, to int
	sha256   string // defaults to the whole image's
	version  string // defaults to 2.0.0
	offset   string // overrides the Upload-Offset header when set
	signed   string // X-Firmware-Signature, when set
}

func (p piece) send(f *Fleet) *httptest.ResponseRecorder {
	var body io.Reader = bytes.NewReader(p.img[p.from:p.to])
	if p.to < len(p.img) {
		body = io.MultiReader(body, errReader{io.ErrUnexpectedEOF})
	}
	req := httptest.NewRequest(http.MethodPost, "/devices/"+p.device+"/update", body)
	req.ContentLength = int64(len(p.img) - p.from)
	sum, version := p.sha256, p.version
	if sum == "" {
		sum = checksum(p.img)
	}
	if version == "" {
		version = "2.0.0"
	}
	req.Header.Set("X-Firmware-Version", version)
	req.Header.Set("X-Firmware-SHA256", sum)
	if p.signed != "" {
		req.Header.Set(signatureHeader, p.signed)
	}
	switch {
	case p.offset != "":
		req.Header.Set("Upload-Offset", p.offset)
	case p.from > 0:
		req.Header.Set("Upload-Offset", strconv.Itoa(p.from))
	}
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, req)
	return rec
}

// head asks a device what it holds of the image with sum, as HEAD /update.
func head(f *Fleet, device, sum string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodHead, "/devices/"+device+"/update", nil)
	req.Header.Set("X-Firmware-SHA256", sum)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, req)
	return rec
}

func newTestFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	if cfg.Devices == 0 {
		cfg.Devices = 1
	}
	if cfg.Version == "" {
		cfg.Version = "1.0.0"
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func wantRecorded(t *testing.T, what string, rec *httptest.ResponseRecorder, code int) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("%s: status %d %s, want %d", what, rec.Code, rec.Body.String(), code)
	}
}

func wantHeld(t *testing.T, what string, f *Fleet, device, sum string, offset int) {
	t.Helper()
	rec := head(f, device, sum)
	wantRecorded(t, what+": HEAD", rec, http.StatusOK)
	if got := rec.Header().Get("Upload-Offset"); got != strconv.Itoa(offset) {
		t.Fatalf("%s: Upload-Offset %q, want %d", what, got, offset)
	}
}

// An image cut three times arrives whole: each resumed piece continues the
// SHA-256 state kept after the previous cut, so the whole-image check
// passes, and a wrong byte anywhere still fails it.
func TestResumeAcrossSeveralCuts(t *testing.T) {
	img := image(300<<10 + 11)
	sum := checksum(img)
	cuts := []int{100 << 10, 170<<10 + 3, 250 << 10}

	f := newTestFleet(t, Config{Devices: 2})
	from := 0
	for _, to := range cuts {
		rec := piece{device: "dev-00001", img: img, from: from, to: to}.send(f)
		wantRecorded(t, "cut piece", rec, http.StatusBadRequest)
		wantHeld(t, "after a cut", f, "dev-00001", sum, to)
		from = to
	}
	if state := len(f.byID["dev-00001"].partial.state); state > 256 {
		t.Errorf("a partial keeps %d bytes of hash state; it must not keep image data", state)
	}
	rec := piece{device: "dev-00001", img: img, from: from, to: len(img)}.send(f)
	wantRecorded(t, "last piece", rec, http.StatusAccepted)
	wantHeld(t, "after the install", f, "dev-00001", sum, 0)
	got := deviceStats(t, f, "dev-00001")
	if got.Bytes != int64(len(img)) || got.Uploads != int64(len(cuts)+1) || got.Version != "2.0.0" || got.Installs != 1 {
		t.Errorf("stats = %+v, want each byte read once, %d uploads, one install of 2.0.0", got, len(cuts)+1)
	}

	// The same pieces with one byte wrong in the middle one fail the check.
	bad := bytes.Clone(img)
	bad[cuts[1]-1] ^= 0xff
	from = 0
	for _, to := range append(cuts, len(bad)) {
		rec = piece{device: "dev-00002", img: bad, from: from, to: to, sha256: sum}.send(f)
		from = to
	}
	wantRecorded(t, "last piece of a corrupt image", rec, http.StatusUnprocessableEntity)
	wantHeld(t, "after a refused image", f, "dev-00002", sum, 0)
	if got := deviceStats(t, f, "dev-00002"); got.Installs != 0 || got.Version != "1.0.0" {
		t.Errorf("stats = %+v, want no install", got)
	}
}

func TestHeadUploadOffset(t *testing.T) {
	img := image(10 << 10)
	sum := checksum(img)
	f := newTestFleet(t, Config{Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}

	rec := head(f, "dev-00001", sum, auth...)
	wantRecorded(t, "nothing held", rec, http.StatusOK)
	if rec.Header().Get("Upload-Offset") != "0" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v, want Upload-Offset 0 and no-store", rec.Header())
	}
	wantRecorded(t, "no token", head(f, "dev-00001", sum), http.StatusUnauthorized)
	wantRecorded(t, "short digest", head(f, "dev-00001", "abc", auth...), http.StatusBadRequest)
	wantRecorded(t, "unknown device", head(f, "nope", sum, auth...), http.StatusNotFound)

	f = newTestFleet(t, Config{})
	piece{device: "dev-00001", img: img, from: 0, to: 4000}.send(f)
	wantHeld(t, "held", f, "dev-00001", sum, 4000)
	if got := head(f, "dev-00001", sum, "X-Firmware-Version", "2.0.0").Header().Get("Upload-Offset"); got != "4000" {
		t.Errorf("with the partial's version: Upload-Offset %q, want 4000", got)
	}
	if got := head(f, "dev-00001", sum, "X-Firmware-Version", "3.0.0").Header().Get("Upload-Offset"); got != "0" {
		t.Errorf("with another version: Upload-Offset %q, want 0", got)
	}
	wantHeld(t, "another image", f, "dev-00001", checksum([]byte("other")), 0)
	if got := deviceStats(t, f, "dev-00001").Uploads; got != 1 {
		t.Errorf("uploads = %d, want 1: HEAD is not an upload", got)
	}
}

func TestHeadOfflineDeviceNeverAnswers(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Offline: 1})
	req, err := http.NewRequest(http.MethodHead, srv.URL+"/devices/dev-00001/update", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Firmware-SHA256", checksum(nil))
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("offline device answered HEAD with %d", resp.StatusCode)
	}
}

// A resume from an offset the device does not hold is refused before the
// body is read, with the offset it does hold; the partial survives.
func TestResumeConflict(t *testing.T) {
	img := image(20 << 10)
	sum := checksum(img)
	f := newTestFleet(t, Config{})
	piece{device: "dev-00001", img: img, from: 0, to: 5000}.send(f)

	for name, tc := range map[string]struct {
		p    piece
		want string
	}{
		"behind":        {piece{from: 3000}, "5000"},
		"ahead":         {piece{from: 7000}, "5000"},
		"other image":   {piece{from: 5000, sha256: checksum([]byte("other"))}, "0"},
		"other version": {piece{from: 5000, version: "3.0.0"}, "0"},
	} {
		tc.p.device, tc.p.img, tc.p.to = "dev-00001", img, len(img)
		rec := tc.p.send(f)
		wantRecorded(t, name, rec, http.StatusConflict)
		if got := rec.Header().Get("Upload-Offset"); got != tc.want {
			t.Errorf("%s: Upload-Offset %q, want %s", name, got, tc.want)
		}
	}
	wantHeld(t, "after the conflicts", f, "dev-00001", sum, 5000)
	if got := deviceStats(t, f, "dev-00001"); got.Bytes != 5000 || got.Uploads != 5 {
		t.Errorf("stats = %+v, want 5 uploads and no body read after the cut", got)
	}
	rec := piece{device: "dev-00001", img: img, from: 5000, to: len(img)}.send(f)
	wantRecorded(t, "resume at the held offset", rec, http.StatusAccepted)
}

func TestResumeNothingHeldIsAConflict(t *testing.T) {
	f := newTestFleet(t, Config{})
	img := image(1000)
	rec := piece{device: "dev-00001", img: img, from: 400, to: len(img)}.send(f)
	wantRecorded(t, "resume with nothing held", rec, http.StatusConflict)
	if got := rec.Header().Get("Upload-Offset"); got != "0" {
		t.Errorf("Upload-Offset %q, want 0", got)
	}
}

func TestBadUploadOffset(t *testing.T) {
	f := newTestFleet(t, Config{})
	img := image(1000)
	for _, offset := range []string{"abc", "-1", "1.5"} {
		rec := piece{device: "dev-00001", img: img, to: len(img), offset: offset}.send(f)
		wantRecorded(t, "Upload-Offset "+offset, rec, http.StatusBadRequest)
	}
}

// Without Upload-Offset (or with 0) an upload starts over; if it is cut in
// turn, what it received replaces the older partial.
func TestUploadFromZeroStartsOver(t *testing.T) {
	img := image(20 << 10)
	sum := checksum(img)
	f := newTestFleet(t, Config{Devices: 2})

	piece{device: "dev-00001", img: img, from: 0, to: 9000}.send(f)
	rec := piece{device: "dev-00001", img: img, from: 0, to: 3000, offset: "0"}.send(f)
	wantRecorded(t, "cut again from 0", rec, http.StatusBadRequest)
	wantHeld(t, "the newer partial", f, "dev-00001", sum, 3000)

	piece{device: "dev-00002", img: img, from: 0, to: 9000}.send(f)
	rec = piece{device: "dev-00002", img: img, from: 0, to: len(img)}.send(f)
	wantRecorded(t, "whole upload over a partial", rec, http.StatusAccepted)
	wantHeld(t, "after the install", f, "dev-00002", sum, 0)
}

// The drop fault cuts the first upload after half of it and keeps that
// half: the rest completes the image.
func TestDropLeavesAPartial(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Drop = 1 })
	srv := serve(t, f)
	img := image(512<<10 + 1)
	if r, err := (upload{device: id, version: "2.0.0", body: img}).send(t, srv); err == nil {
		t.Fatalf("first upload answered %d, want the connection cut", r.code)
	}
	half := len(img) / 2
	wantHeld(t, "after the drop", f, id, checksum(img), half)
	rec := piece{device: id, img: img, from: half, to: len(img)}.send(f)
	wantRecorded(t, "the rest", rec, http.StatusAccepted)
	if v := waitForVersion(t, srv, id); v != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", v)
	}
	want := DeviceStats{ID: id, Version: "2.0.0", Installs: 1, Uploads: 2, Bytes: int64(len(img)), Fault: FaultDrop}
	if got := deviceStats(t, f, id); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

// --no-resume devices predate resumable uploads: HEAD is not allowed, and
// Upload-Offset means nothing, so a "rest" is taken for a whole image.
func TestNoResume(t *testing.T) {
	f := newTestFleet(t, Config{NoResume: true, Drop: 1, Reboot: time.Millisecond})
	srv := serve(t, f)
	img := image(64 << 10)
	sum := checksum(img)

	rec := head(f, "dev-00001", sum)
	wantRecorded(t, "HEAD", rec, http.StatusMethodNotAllowed)
	if allow := rec.Header().Get("Allow"); allow != http.MethodPost {
		t.Errorf("Allow %q, want POST", allow)
	}
	if _, err := (upload{device: "dev-00001", version: "2.0.0", body: img}).send(t, srv); err == nil {
		t.Fatal("the drop device answered its first upload")
	}
	wantRecorded(t, "HEAD after a cut", head(f, "dev-00001", sum), http.StatusMethodNotAllowed)
	rec = piece{device: "dev-00001", img: img, from: len(img) / 2, to: len(img)}.send(f)
	wantRecorded(t, "a resume, taken for a whole image", rec, http.StatusUnprocessableEntity)
	if f.byID["dev-00001"].partial != nil {
		t.Error("a --no-resume device kept a partial")
	}
	rec = piece{device: "dev-00001", img: img, from: 0, to: len(img)}.send(f)
	wantRecorded(t, "whole upload", rec, http.StatusAccepted)
}
