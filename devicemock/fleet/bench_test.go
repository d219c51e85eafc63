package fleet

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func BenchmarkUpload(b *testing.B) {
	f, err := New(Config{Devices: 1, Version: "0"})
	if err != nil {
		b.Fatal(err)
	}
	srv := serve(b, f)
	img := image(1 << 20)
	sum := checksum(img)
	client := srv.Client()
	b.SetBytes(int64(len(img)))
	for i := 0; b.Loop(); i++ {
		// A new version each time, so every upload is read and installed.
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/dev-00001/update", bytes.NewReader(img))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-Firmware-Version", strconv.Itoa(i+1))
		req.Header.Set("X-Firmware-SHA256", sum)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func BenchmarkInventory10k(b *testing.B) {
	f, err := New(Config{Devices: 10_000, Version: "1.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	handler := f.Handler()
	for b.Loop() {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_fleet/inventory", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
