package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when something sleeps on it, and remembers each
// sleep, so latency and bandwidth are checked without wall-clock timing.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// serve runs f on a real HTTP server for the duration of the test.
func serve(t testing.TB, f *Fleet) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// startFleet builds a fleet from cfg on the real clock and serves it.
func startFleet(t testing.TB, cfg Config) (*Fleet, *httptest.Server) {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f, serve(t, f)
}

func checksum(image []byte) string {
	sum := sha256.Sum256(image)
	return hex.EncodeToString(sum[:])
}

// image makes n bytes of deterministic, non-repeating-looking content.
func image(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// upload describes one POST /update; zero fields mean "well-formed".
type upload struct {
	device    string
	version   string
	body      []byte
	sha256    string // defaults to the body's checksum
	token     string
	signature string // X-Firmware-Signature, when set
}

type reply struct {
	code int
	body map[string]string
}

// send performs the upload and returns the reply, or the transport error
// when the device answered nothing.
func (u upload) send(t testing.TB, srv *httptest.Server) (reply, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/devices/"+u.device+"/update", bytes.NewReader(u.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if u.version != "" {
		req.Header.Set("X-Firmware-Version", u.version)
	}
	sum := u.sha256
	if sum == "" {
		sum = checksum(u.body)
	}
	req.Header.Set("X-Firmware-SHA256", sum)
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	if u.signature != "" {
		req.Header.Set(signatureHeader, u.signature)
	}
	return do(t, srv, req)
}

// mustSend is send for uploads that must get an HTTP reply.
func (u upload) mustSend(t testing.TB, srv *httptest.Server) reply {
	t.Helper()
	r, err := u.send(t, srv)
	if err != nil {
		t.Fatalf("upload to %s: %v", u.device, err)
	}
	return r
}

func get(t testing.TB, srv *httptest.Server, path string) (reply, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, srv, req)
}

func mustGet(t testing.TB, srv *httptest.Server, path string) reply {
	t.Helper()
	r, err := get(t, srv, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

func do(t testing.TB, srv *httptest.Server, req *http.Request) (reply, error) {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading reply: %v", req.Method, req.URL.Path, err)
	}
	r := reply{code: resp.StatusCode}
	if err := json.Unmarshal(data, &r.body); err != nil {
		t.Fatalf("%s %s: reply %d is not a JSON object: %q", req.Method, req.URL.Path, resp.StatusCode, data)
	}
	return r, nil
}

func getJSON(t testing.TB, srv *httptest.Server, path string, v any) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func wantCode(t testing.TB, what string, got reply, code int) {
	t.Helper()
	if got.code != code {
		t.Fatalf("%s: status %d %v, want %d", what, got.code, got.body, code)
	}
}

// deviceStats returns one device's line of the fleet's stats.
func deviceStats(t testing.TB, f *Fleet, id string) DeviceStats {
	t.Helper()
	for _, d := range f.Stats().Devices {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no stats for device %s", id)
	return DeviceStats{}
}

// waitForVersion polls GET /version until the device answers 200, failing
// after a generous deadline.
func waitForVersion(t testing.TB, srv *httptest.Server, id string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := mustGet(t, srv, "/devices/"+id+"/version")
		if r.code == http.StatusOK {
			return r.body["version"]
		}
		if r.code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET version of %s: status %d, want 503 until it answers 200", id, r.code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// devicesWith lists the ids of devices whose stats carry fault, in id order.
func devicesWith(f *Fleet, fault Fault) []string {
	var ids []string
	for _, d := range f.Stats().Devices {
		if d.Fault == fault {
			ids = append(ids, d.ID)
		}
	}
	return ids
}
