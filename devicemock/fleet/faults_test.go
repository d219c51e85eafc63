package fleet

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"
)

// faultyFleet gives fault to every one of n devices.
func faultyFleet(t *testing.T, n int, set func(*Config)) (*Fleet, string) {
	t.Helper()
	cfg := Config{Devices: n, Version: "1.0.0", Reboot: 20 * time.Millisecond}
	set(&cfg)
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, "dev-00001"
}

func TestFail5xxRefusesTwiceThenWorks(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Fail5xx = 1 })
	srv := serve(t, f)
	img := image(20 << 10)
	u := upload{device: id, version: "2.0.0", body: img}
	wantCode(t, "first upload", u.mustSend(t, srv), http.StatusServiceUnavailable)
	wantCode(t, "second upload", u.mustSend(t, srv), http.StatusServiceUnavailable)
	wantCode(t, "third upload", u.mustSend(t, srv), http.StatusAccepted)
	if v := waitForVersion(t, srv, id); v != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", v)
	}
	got := deviceStats(t, f, id)
	if got.Fault != FaultFail5xx || got.Uploads != 3 || got.Installs != 1 || got.Bytes != int64(len(img)) {
		t.Errorf("stats = %+v, want fail-5xx, 3 uploads, 1 install, one body read", got)
	}
}

func TestFail4xxRefusesForever(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Fail4xx = 1 })
	srv := serve(t, f)
	u := upload{device: id, version: "2.0.0", body: image(1000)}
	for i := range 4 {
		r := u.mustSend(t, srv)
		wantCode(t, "upload", r, http.StatusForbidden)
		if i == 0 && r.body["error"] == "" {
			t.Errorf("403 reply %v has no error", r.body)
		}
	}
	// A body larger than the server drains must not turn 403 into a network error.
	big := upload{device: id, version: "2.0.0", body: image(8 << 20)}
	wantCode(t, "large upload", big.mustSend(t, srv), http.StatusForbidden)
	if v := waitForVersion(t, srv, id); v != "1.0.0" {
		t.Errorf("version = %q, want 1.0.0", v)
	}
	if got := deviceStats(t, f, id); got.Fault != FaultFail4xx || got.Uploads != 5 || got.Installs != 0 {
		t.Errorf("stats = %+v, want fail-4xx, 5 uploads, no install", got)
	}
}

func TestOfflineNeverAnswers(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Offline = 1 })
	srv := serve(t, f)
	if r, err := (upload{device: id, version: "2.0.0", body: image(64 << 10)}).send(t, srv); err == nil {
		t.Errorf("upload to offline device answered %d, want no reply", r.code)
	}
	for _, path := range []string{"/devices/" + id + "/version", "/devices/" + id + "/health"} {
		if r, err := get(t, srv, path); err == nil {
			t.Errorf("GET %s answered %d, want no reply", path, r.code)
		}
	}
	if got := deviceStats(t, f, id); got.Fault != FaultOffline || got.Uploads != 1 || got.Bytes != 0 {
		t.Errorf("stats = %+v, want offline, 1 upload, 0 bytes", got)
	}
	if inv := f.Inventory("http://x"); inv[0].Status != "offline" {
		t.Errorf("inventory status = %q, want offline", inv[0].Status)
	}
}

func TestDropCutsFirstUploadOnly(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Drop = 1 })
	srv := serve(t, f)
	img := image(512 << 10)
	u := upload{device: id, version: "2.0.0", body: img}
	if r, err := u.send(t, srv); err == nil {
		t.Fatalf("first upload answered %d, want the connection cut", r.code)
	}
	if got := deviceStats(t, f, id).Bytes; got != int64(len(img)/2) {
		t.Errorf("bytes read before the cut = %d, want half of %d", got, len(img))
	}
	wantCode(t, "second upload", u.mustSend(t, srv), http.StatusAccepted)
	if v := waitForVersion(t, srv, id); v != "2.0.0" {
		t.Errorf("version = %q, want 2.0.0", v)
	}
	want := DeviceStats{ID: id, Version: "2.0.0", Installs: 1, Uploads: 2, Bytes: int64(len(img)/2 + len(img)), Fault: FaultDrop}
	if got := deviceStats(t, f, id); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestWrongVersionComesBackOnPreviousVersion(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.WrongVersion = 1 })
	srv := serve(t, f)
	r := upload{device: id, version: "2.0.0", body: image(4096)}.mustSend(t, srv)
	wantCode(t, "upload", r, http.StatusAccepted)
	if v := waitForVersion(t, srv, id); v != "1.0.0" {
		t.Errorf("version after reboot = %q, want the previous 1.0.0", v)
	}
	if got := deviceStats(t, f, id); got.Fault != FaultWrongVersion || got.Installs != 1 || got.Version != "1.0.0" {
		t.Errorf("stats = %+v, want wrong-version, 1 install, on 1.0.0", got)
	}
}

func TestFaultAssignmentIsSeededDisjointAndExact(t *testing.T) {
	cfg := Config{Devices: 1000, Version: "1.0.0", Seed: 42,
		Fail4xx: 0.1, Fail5xx: 0.05, Offline: 0.02, Drop: 0.031, WrongVersion: 0.0444}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Fault]int{FaultFail4xx: 100, FaultFail5xx: 50, FaultOffline: 20, FaultDrop: 31, FaultWrongVersion: 44, "": 755}
	// Each device carries exactly one fault, so the per-fault sets are disjoint
	// as long as they add up to the fleet.
	got := map[Fault]int{}
	for _, d := range f.Stats().Devices {
		got[d.Fault]++
	}
	for fault, n := range want {
		if got[fault] != n {
			t.Errorf("%q: %d devices, want %d", fault, got[fault], n)
		}
	}

	again, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, fault := range []Fault{FaultFail4xx, FaultFail5xx, FaultOffline, FaultDrop, FaultWrongVersion} {
		if a, b := devicesWith(f, fault), devicesWith(again, fault); !slices.Equal(a, b) {
			t.Errorf("%s: same seed chose different devices", fault)
		}
	}

	cfg.Seed = 43
	other, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(devicesWith(f, FaultFail4xx), devicesWith(other, FaultFail4xx)) {
		t.Errorf("seeds 42 and 43 chose the same fail-4xx devices")
	}
}

func TestFaultSharesNeverOvershootTheFleet(t *testing.T) {
	// round(0.5*3) = 2 twice would need 4 devices; the later fault gets the rest.
	f, err := New(Config{Devices: 3, Version: "1.0.0", Fail4xx: 0.5, Fail5xx: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if n4, n5 := len(devicesWith(f, FaultFail4xx)), len(devicesWith(f, FaultFail5xx)); n4 != 2 || n5 != 1 {
		t.Errorf("fail-4xx %d, fail-5xx %d devices, want 2 and 1", n4, n5)
	}
}

func TestFail429AsksToWaitOnceThenWorks(t *testing.T) {
	f, id := faultyFleet(t, 1, func(c *Config) { c.Busy = 1 })
	srv := serve(t, f)
	img := image(4 << 10)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/"+id+"/update", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", checksum(img))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("first upload: %d with Retry-After %q, want 429 with 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	u := upload{device: id, version: "2.0.0", body: img}
	wantCode(t, "second upload", u.mustSend(t, srv), http.StatusAccepted)
	if got := deviceStats(t, f, id); got.Fault != FaultBusy || got.Uploads != 2 {
		t.Errorf("stats = %+v, want fail-429 and 2 uploads", got)
	}
}
