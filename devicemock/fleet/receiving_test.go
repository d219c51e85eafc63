package fleet

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// While an upload's body is arriving, the device says so on /version and
// refuses a second upload (503): the body of a client that gave up may
// still be in the socket buffers, and it may yet install. Once the body
// is in, the device is idle again.
func TestDeviceReceivesOneUploadAtATime(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", Reboot: time.Millisecond})
	img := image(64 << 10)
	body, feed := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/dev-00001/update", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(img))
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", checksum(img))
	first := make(chan reply, 1)
	go func() {
		r, err := do(t, srv, req)
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	if _, err := feed.Write(img[:1000]); err != nil {
		t.Fatal(err)
	}
	for deviceStats(t, f, "dev-00001").Bytes < 1000 {
		time.Sleep(5 * time.Millisecond)
	}

	if got := mustGet(t, srv, "/devices/dev-00001/version"); got.code != http.StatusOK || got.body["state"] != "receiving" || got.body["version"] != "1.0.0" {
		t.Errorf("version while receiving = %d %v, want 200 state receiving on 1.0.0", got.code, got.body)
	}
	second := upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "second upload while receiving", second, http.StatusServiceUnavailable)
	if second.body["error"] != "receiving another upload" {
		t.Errorf("second upload answered %v", second.body)
	}

	if _, err := feed.Write(img[1000:]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "first upload", <-first, http.StatusAccepted)
	if v := waitForVersion(t, srv, "dev-00001"); v != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", v)
	}
	if got := mustGet(t, srv, "/devices/dev-00001/version"); got.body["state"] != "idle" {
		t.Errorf("state after the install = %v, want idle", got.body)
	}
	if st := deviceStats(t, f, "dev-00001"); st.Installs != 1 || st.Uploads != 2 {
		t.Errorf("stats = %+v, want 1 install of 2 uploads", st)
	}
}
