package fleet

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestThrottledReaderKeepsToTheRate(t *testing.T) {
	const rate = 10_000 // bytes per second, so chunks of 1,000 bytes
	clk := newFakeClock()
	start := clk.Now()
	data := image(25_500)
	r := newThrottledReader(context.Background(), bytes.NewReader(data), rate, clk)
	buf := make([]byte, 64<<10)
	var read int
	for {
		n, err := r.Read(buf)
		read += n
		if n > 1000 {
			t.Fatalf("read %d bytes at once, want chunks of at most 1000", n)
		}
		// After every chunk the clock stands where the rate says it must.
		want := time.Duration(read) * time.Second / rate
		if got := clk.Now().Sub(start); got != want {
			t.Fatalf("after %d bytes the clock advanced %v, want %v", read, got, want)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if read != len(data) {
		t.Errorf("read %d bytes, want %d", read, len(data))
	}
}

func TestThrottledReaderOnlySleepsWhenAhead(t *testing.T) {
	clk := newFakeClock()
	r := newThrottledReader(context.Background(), bytes.NewReader(image(1000)), 1000, clk)
	// The client was slower than the cap: 5s passed before anything arrived.
	clk.now = clk.now.Add(5 * time.Second)
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if slept := clk.slept(); len(slept) != 0 {
		t.Errorf("slept %v, want no sleep for a client slower than the cap", slept)
	}
}

func TestBandwidthCapsUploads(t *testing.T) {
	const rate = 64 << 10
	clk := newFakeClock()
	f, err := newFleet(Config{Devices: 1, Version: "1.0.0", Bandwidth: rate}, clk)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, f)
	img := image(256 << 10)
	start := clk.Now()
	r := upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "throttled upload", r, http.StatusAccepted)

	// 256 KiB at 64 KiB/s is 4 s on the device's clock, reached in steps of
	// at most a tenth of a second's worth of bytes.
	if elapsed := clk.Now().Sub(start); elapsed != 4*time.Second {
		t.Errorf("upload took %v of fake time, want 4s", elapsed)
	}
	slept := clk.slept()
	if len(slept) < 40 {
		t.Errorf("slept %d times, want at least 40 steps of <= 6553 bytes", len(slept))
	}
	for _, d := range slept {
		if d > 100*time.Millisecond+time.Millisecond {
			t.Errorf("one sleep lasted %v, want steps of about 100ms", d)
		}
	}
	if got := deviceStats(t, f, "dev-00001").Bytes; got != int64(len(img)) {
		t.Errorf("bytes = %d, want %d", got, len(img))
	}
}

func TestUnlimitedBandwidthNeverSleeps(t *testing.T) {
	clk := newFakeClock()
	f, err := newFleet(Config{Devices: 1, Version: "1.0.0"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, f)
	wantCode(t, "upload", upload{device: "dev-00001", version: "2.0.0", body: image(256 << 10)}.mustSend(t, srv), http.StatusAccepted)
	if slept := clk.slept(); len(slept) != 0 {
		t.Errorf("slept %v with no bandwidth or latency set", slept)
	}
}

func TestLatencyDelaysEveryDeviceRequest(t *testing.T) {
	const latency = 250 * time.Millisecond
	clk := newFakeClock()
	f, err := newFleet(Config{Devices: 2, Version: "1.0.0", Token: "s3cret", Latency: latency, Offline: 0.5}, clk)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, f)
	online, offline := devicesWith(f, ""), devicesWith(f, FaultOffline)
	if len(online) != 1 || len(offline) != 1 {
		t.Fatalf("online %v offline %v, want one of each", online, offline)
	}
	id := online[0]

	// Latency comes before the token check, so even a refused upload waits.
	wantCode(t, "upload without token", upload{device: id, version: "2.0.0", body: image(100)}.mustSend(t, srv), http.StatusUnauthorized)
	wantCode(t, "version", mustGet(t, srv, "/devices/"+id+"/version"), http.StatusOK)
	wantCode(t, "health", mustGet(t, srv, "/devices/"+id+"/health"), http.StatusOK)
	// Offline devices hang up at once; fleet routes have no latency.
	if _, err := get(t, srv, "/devices/"+offline[0]+"/version"); err == nil {
		t.Error("offline device answered")
	}
	var inventory []Device
	getJSON(t, srv, "/_fleet/inventory", &inventory)

	slept := clk.slept()
	if len(slept) != 3 {
		t.Fatalf("slept %v, want three sleeps of %v", slept, latency)
	}
	for _, d := range slept {
		if d != latency {
			t.Errorf("slept %v, want %v", d, latency)
		}
	}
}
