package fleet

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// onlyReader hides bytes.Reader's Len, so the request goes out chunked,
// without Content-Length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestUploadLargerThanMaxImageIsRefusedUnread(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", MaxImage: 1000})
	r := upload{device: "dev-00001", version: "2.0.0", body: image(1001)}.mustSend(t, srv)
	wantCode(t, "upload of 1001 bytes", r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(r.body["error"], "1000 bytes") {
		t.Errorf("reply %v, want it to name the 1000-byte limit", r.body)
	}
	if got := deviceStats(t, f, "dev-00001"); got.Bytes != 0 || got.Installs != 0 {
		t.Errorf("stats = %+v, want no byte read and no install", got)
	}
	r = upload{device: "dev-00001", version: "2.0.0", body: image(1000)}.mustSend(t, srv)
	wantCode(t, "upload of exactly the limit", r, http.StatusAccepted)
}

func TestChunkedUploadPastMaxImageIsCut(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", MaxImage: 64 << 10})
	img := image(1 << 20)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/dev-00001/update", onlyReader{bytes.NewReader(img)})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Firmware-Version", "2.0.0")
	req.Header.Set("X-Firmware-SHA256", checksum(img))
	r, err := do(t, srv, req)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "chunked upload of 1 MiB", r, http.StatusRequestEntityTooLarge)
	got := deviceStats(t, f, "dev-00001")
	if got.Bytes > 64<<10 || got.Installs != 0 {
		t.Errorf("stats = %+v, want at most the 64 KiB limit read and no install", got)
	}
	// Nothing past the limit is kept to resume from.
	wantHeld(t, "after the cut", f, "dev-00001", checksum(img), 0)
}

func TestResumedUploadCountsTheHeldPart(t *testing.T) {
	f := newTestFleet(t, Config{MaxImage: 1500})
	big := image(2000)
	wantRecorded(t, "whole image", piece{device: "dev-00001", img: big, to: 2000}.send(f), http.StatusRequestEntityTooLarge)
	rec := piece{device: "dev-00001", img: big, from: 1000, to: 2000}.send(f)
	wantRecorded(t, "a resume past the limit", rec, http.StatusRequestEntityTooLarge)

	img := image(1500)
	wantRecorded(t, "first part", piece{device: "dev-00001", img: img, to: 700}.send(f), http.StatusBadRequest)
	wantHeld(t, "after the cut", f, "dev-00001", checksum(img), 700)
	wantRecorded(t, "the rest, up to the limit", piece{device: "dev-00001", img: img, from: 700, to: 1500}.send(f), http.StatusAccepted)
}

func TestRequestsOtherThanUploadsTakeNoBody(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0"})
	for _, path := range []string{"/devices/dev-00001/version", "/devices/dev-00001/health", "/_fleet/stats", "/_fleet/inventory"} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, bytes.NewReader(image(64<<10)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := do(t, srv, req)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "GET "+path+" with a 64 KiB body", r, http.StatusRequestEntityTooLarge)
	}
}

// A client that stops sending mid-upload is cut off after the stall
// deadline; the device keeps what arrived.
func TestStalledUploadIsCutOff(t *testing.T) {
	f, err := New(Config{Devices: 1, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	f.uploadStall = 100 * time.Millisecond
	srv := serve(t, f)
	img := image(1000)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /devices/dev-00001/update HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"+
		"X-Firmware-Version: 2.0.0\r\nX-Firmware-SHA256: %s\r\n\r\n", len(img), checksum(img))
	if _, err := conn.Write(img[:300]); err != nil {
		t.Fatal(err)
	}
	// The rest never comes. A generous bound: the device gives up long before.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the device's answer to a stalled upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "timeout") {
		t.Fatalf("answer %d %s, want 400 naming the timeout", resp.StatusCode, body)
	}
	wantHeld(t, "after the stall", f, "dev-00001", checksum(img), 300)
}

// A bandwidth cap slows devicemock's reads, not the client: an upload that
// takes many stall deadlines at the cap still arrives.
func TestSlowUploadOutlivesTheStallDeadline(t *testing.T) {
	f, err := New(Config{Devices: 1, Version: "1.0.0", Bandwidth: 10 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f.uploadStall = 50 * time.Millisecond
	srv := serve(t, f)
	img := image(8 << 10) // 8 chunks of 1 KiB, 100ms apart
	r := upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "capped upload", r, http.StatusAccepted)
}
