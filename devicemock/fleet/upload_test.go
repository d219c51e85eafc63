package fleet

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUploadInstallsAfterReboot(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 2, Version: "1.0.0", Reboot: 50 * time.Millisecond})
	img := image(100 << 10)

	r := upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "upload", r, http.StatusAccepted)
	if r.body["status"] != "accepted" {
		t.Errorf("upload reply %v, want status accepted", r.body)
	}

	// Installing: every request is refused until the reboot is over.
	wantCode(t, "version while installing", mustGet(t, srv, "/devices/dev-00001/version"), http.StatusServiceUnavailable)
	wantCode(t, "health while installing", mustGet(t, srv, "/devices/dev-00001/health"), http.StatusServiceUnavailable)
	again := upload{device: "dev-00001", version: "3.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "upload while installing", again, http.StatusServiceUnavailable)
	if got := deviceStats(t, f, "dev-00001"); got.Installs != 0 || got.Version != "1.0.0" {
		t.Errorf("stats while installing = %+v, want version 1.0.0 and no completed install", got)
	}

	if v := waitForVersion(t, srv, "dev-00001"); v != "2.0.0" {
		t.Errorf("version after reboot = %q, want 2.0.0", v)
	}
	health := mustGet(t, srv, "/devices/dev-00001/health")
	wantCode(t, "health after reboot", health, http.StatusOK)
	if health.body["status"] != "ok" {
		t.Errorf("health reply %v, want status ok", health.body)
	}
	got := deviceStats(t, f, "dev-00001")
	want := DeviceStats{ID: "dev-00001", Version: "2.0.0", Installs: 1, Uploads: 2, Bytes: int64(len(img))}
	if got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if other := deviceStats(t, f, "dev-00002"); other.Version != "1.0.0" || other.Uploads != 0 {
		t.Errorf("untouched device stats = %+v", other)
	}
}

func TestVersionReplyWhenIdle(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.2.3"})
	r := mustGet(t, srv, "/devices/dev-00001/version")
	wantCode(t, "version", r, http.StatusOK)
	if r.body["version"] != "1.2.3" || r.body["state"] != "idle" {
		t.Errorf("version reply %v, want version 1.2.3 state idle", r.body)
	}
}

func TestUploadAlreadyInstalledDoesNotReadBody(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	r := upload{device: "dev-00001", version: "1.0.0", body: image(10 << 10)}.mustSend(t, srv)
	wantCode(t, "upload of running version", r, http.StatusOK)
	if r.body["status"] != "already-installed" {
		t.Errorf("reply %v, want status already-installed", r.body)
	}
	if got := deviceStats(t, f, "dev-00001"); got.Uploads != 1 || got.Bytes != 0 || got.Installs != 0 {
		t.Errorf("stats = %+v, want 1 upload, 0 bytes, 0 installs", got)
	}
}

func TestUploadChecksumMismatch(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Reboot: time.Millisecond})
	img := image(50 << 10)
	r := upload{device: "dev-00001", version: "2.0.0", body: img, sha256: checksum([]byte("other"))}.mustSend(t, srv)
	wantCode(t, "upload with wrong checksum", r, http.StatusUnprocessableEntity)
	if r.body["error"] != "checksum mismatch" {
		t.Errorf("reply %v, want error checksum mismatch", r.body)
	}
	if v := waitForVersion(t, srv, "dev-00001"); v != "1.0.0" {
		t.Errorf("version after refused upload = %q, want 1.0.0", v)
	}
	if got := deviceStats(t, f, "dev-00001"); got.Installs != 0 || got.Bytes != int64(len(img)) {
		t.Errorf("stats = %+v, want no install and the whole body read", got)
	}
}

func TestUploadChecksumIsCaseInsensitive(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	img := image(1000)
	r := upload{device: "dev-00001", version: "2.0.0", body: img, sha256: strings.ToUpper(checksum(img))}.mustSend(t, srv)
	wantCode(t, "upload with upper-case checksum", r, http.StatusAccepted)
}

func TestUploadBadHeaders(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	img := image(100)
	for name, u := range map[string]upload{
		"no version":         {body: img},
		"short checksum":     {version: "2.0.0", body: img, sha256: "abc123"},
		"non-hex checksum":   {version: "2.0.0", body: img, sha256: strings.Repeat("zz", 32)},
		"over-long checksum": {version: "2.0.0", body: img, sha256: checksum(img) + "00"},
	} {
		u.device = "dev-00001"
		wantCode(t, name, u.mustSend(t, srv), http.StatusBadRequest)
	}
}

func TestUnknownDevice(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	wantCode(t, "upload", upload{device: "nope", version: "2.0.0", body: image(10)}.mustSend(t, srv), http.StatusNotFound)
	wantCode(t, "version", mustGet(t, srv, "/devices/nope/version"), http.StatusNotFound)
	wantCode(t, "health", mustGet(t, srv, "/devices/nope/health"), http.StatusNotFound)
}

func TestToken(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Token: "s3cret"})
	img := image(1000)
	for name, token := range map[string]string{"no token": "", "wrong token": "guess"} {
		r := upload{device: "dev-00001", version: "2.0.0", body: img, token: token}.mustSend(t, srv)
		wantCode(t, name, r, http.StatusUnauthorized)
	}
	r := upload{device: "dev-00001", version: "2.0.0", body: img, token: "s3cret"}.mustSend(t, srv)
	wantCode(t, "right token", r, http.StatusAccepted)
	if got := deviceStats(t, f, "dev-00001"); got.Uploads != 3 || got.Bytes != int64(len(img)) {
		t.Errorf("stats = %+v, want 3 uploads and only the authorized body read", got)
	}
	// Only uploads need the token; with no reboot time the install is done.
	r = mustGet(t, srv, "/devices/dev-00001/version")
	wantCode(t, "version without token", r, http.StatusOK)
	if r.body["version"] != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", r.body["version"])
	}
}

func TestUnauthorizedLargeUploadStillGetsItsReply(t *testing.T) {
	// The device answers before reading a body far larger than the server
	// drains; the client must still see the status, not a broken pipe.
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Token: "s3cret"})
	r := upload{device: "dev-00001", version: "2.0.0", body: image(8 << 20)}.mustSend(t, srv)
	wantCode(t, "large upload without token", r, http.StatusUnauthorized)
}

func TestIncompleteBodyInstallsNothing(t *testing.T) {
	f, err := New(Config{Devices: 1, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	img := image(1000)
	// The server's body reader reports a client that hung up early this way.
	body := io.MultiReader(bytes.NewReader(img[:100]), errReader{io.ErrUnexpectedEOF})
	req := httptest.NewRequest(http.MethodPost, "/devices/dev-00001/update", body)
	req.ContentLength = int64(len(img))
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", checksum(img))
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, req)

	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", rec.Code)
	}
	if version, installing := f.devices[0].state(time.Now().Add(time.Hour)); installing || version != "1.0.0" {
		t.Errorf("device on %q installing=%v, want 1.0.0 and idle", version, installing)
	}
	if got := deviceStats(t, f, "dev-00001"); got.Bytes != 100 || got.Installs != 0 {
		t.Errorf("stats = %+v, want 100 bytes and no install", got)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestConcurrentUploadsInstallOnce(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Reboot: time.Minute})
	img := image(200 << 10)
	const uploads = 8
	codes := make(chan int, uploads)
	var wg sync.WaitGroup
	for range uploads {
		wg.Go(func() {
			codes <- upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv).code
		})
	}
	wg.Wait()
	close(codes)
	counts := map[int]int{}
	for code := range codes {
		counts[code]++
	}
	if counts[http.StatusAccepted] != 1 || counts[http.StatusServiceUnavailable] != uploads-1 {
		t.Errorf("status counts %v, want one 202 and the rest 503", counts)
	}
	if got := deviceStats(t, f, "dev-00001"); got.Uploads != uploads {
		t.Errorf("uploads = %d, want %d", got.Uploads, uploads)
	}
}

func TestUploadWithoutContentLength(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Reboot: time.Millisecond})
	img := image(300 << 10)
	// A reader of unknown length makes the client send the body chunked.
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/dev-00001/update", io.MultiReader(bytes.NewReader(img)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", checksum(img))
	r, err := do(t, srv, req)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "chunked upload", r, http.StatusAccepted)
	if v := waitForVersion(t, srv, "dev-00001"); v != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", v)
	}
}

func TestWrongMethod(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	resp, err := srv.Client().Get(srv.URL + "/devices/dev-00001/update")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /update: status %d, want 405", resp.StatusCode)
	}
}
