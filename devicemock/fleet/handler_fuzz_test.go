package fleet

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fuzzed fleet: one device per fault, on version 1.0.0, token "tok".
var fuzzFaults = map[string]Fault{
	"ok": "", "f5xx": FaultFail5xx, "f4xx": FaultFail4xx, "off": FaultOffline, "drop": FaultDrop, "wrong": FaultWrongVersion,
}

const fuzzToken = "tok"

// served is what the server saw of one request and how it answered.
type served struct {
	pattern, id     string
	version, sum    string // X-Firmware-Version, X-Firmware-SHA256
	code            int    // 0: no answer (the connection was cut)
	body            []byte
	panicked        any
	panickedAtStack []byte
}

// fuzzServer serves the current fleet through a recording middleware on a
// real server, since offline and drop devices hang up connections.
type fuzzServer struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	active  sync.WaitGroup
	mu      sync.Mutex
	log     []served
	errLog  bytes.Buffer // the server's own error log (panics it recovered)
}

func newFuzzServer(f *testing.F) *fuzzServer {
	s := &fuzzServer{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(&lockedWriter{mu: &s.mu, w: &s.errLog}, "", 0)
	s.srv.Start()
	f.Cleanup(s.srv.Close)
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// serve records the request and its answer. A panic other than the
// deliberate http.ErrAbortHandler is recorded for the test to fail on
// (net/http would recover it and log it, and the client would only see
// a dropped connection).
func (s *fuzzServer) serve(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	rec := &recorder{ResponseWriter: w}
	seen := served{version: r.Header.Get("X-Firmware-Version"), sum: r.Header.Get("X-Firmware-SHA256")}
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			seen.panicked, seen.panickedAtStack = p, debug.Stack()
		}
		seen.pattern, seen.id, seen.code, seen.body = r.Pattern, r.PathValue("id"), rec.code, rec.body.Bytes()
		s.mu.Lock()
		s.log = append(s.log, seen)
		s.mu.Unlock()
		if p != nil {
			panic(p)
		}
	}()
	(*s.handler.Load()).ServeHTTP(rec, r)
}

// recorder notes the status and body; Unwrap keeps Hijack working.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// take returns and clears what was served.
func (s *fuzzServer) take() ([]served, string) {
	s.active.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	log, errs := s.log, s.errLog.String()
	s.log, s.errLog = nil, bytes.Buffer{}
	return log, errs
}

// send writes one raw HTTP/1.1 request, half-closes, and reads whatever
// comes back until the server closes. It reports false when the server
// neither answered nor hung up in time.
func (s *fuzzServer) send(t *testing.T, raw []byte) bool {
	conn, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write(raw) // the server may answer and hang up before reading it all
	_ = conn.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(io.Discard, bufio.NewReader(conn))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// FuzzDeviceRequests sends devicemock requests whose method, path,
// firmware headers, token, Content-Length, Upload-Offset and body come from
// the fuzzer, over real connections, a few rounds with the fleet's clock
// moving between them. The handler never panics or hangs, answers only
// with the protocol's codes and JSON, and the devices stay consistent: an
// install for each 202 and none without, at most one install per upload,
// on the version the accepted upload announced (a wrong-version device
// keeps its own), only for an image whose SHA-256 it was told; offline
// devices never answer and forbidden ones never install.
func FuzzDeviceRequests(f *testing.F) {
	type seed struct {
		method, target, version, sum, auth, offset, length string
		body                                               []byte
		rounds                                             uint8
		advanceMs, rebootMs, bandwidth                     uint16
		latencyMs                                          uint8
	}
	img := []byte(strings.Repeat("firmware", 64))
	for _, s := range []seed{
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer tok", "", "=", img, 2, 100, 50, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer tok", "", "=", nil, 1, 0, 0, 0, 0},
		{"POST", "/devices/f5xx/update", "2.0.0", "", "Bearer tok", "", "=", img, 2, 10, 5, 0, 1},
		{"POST", "/devices/f4xx/update", "2.0.0", "", "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/off/update", "2.0.0", "", "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/drop/update", "2.0.0", "", "Bearer tok", "", "=", img, 2, 0, 0, 0, 0},
		{"POST", "/devices/drop/update", "2.0.0", "", "Bearer tok", "auto", "=", img, 2, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer tok", "auto", "cut", img, 2, 0, 0, 100, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer tok", "", "", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/wrong/update", "2.0.0", "", "Bearer tok", "", "=", img, 2, 2000, 1000, 0, 0},
		{"POST", "/devices/ok/update", "1.0.0", "", "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "ABCDEF", "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", strings.Repeat("0", 64), "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer nope", "", "=", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "", "-1", "99999999999999999999", img, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0", "", "Bearer tok", "12", "abc", img, 1, 0, 0, 0, 0},
		{"HEAD", "/devices/ok/update", "2.0.0", "", "Bearer tok", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/devices/ok/version", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/devices/off/health", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/devices/nobody/version", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/devices/%2e%2e/version", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/_fleet/inventory", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"GET", "/_fleet/stats", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"DELETE", "/devices/ok/update", "", "", "", "", "", nil, 1, 0, 0, 0, 0},
		{"POST", "/devices/ok/update", "2.0.0\r\nX-Injected: 1", "", "Bearer tok", "", "=", img, 1, 0, 0, 0, 0},
	} {
		f.Add(s.method, s.target, s.version, s.sum, s.auth, s.offset, s.length, s.body, s.rounds, s.advanceMs, s.rebootMs, s.bandwidth, s.latencyMs)
	}

	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, method, target, version, sum, auth, offset, length string, body []byte,
		rounds uint8, advanceMs, rebootMs, bandwidth uint16, latencyMs uint8) {
		clk := newFakeClock()
		fl := newFuzzFleet(t, clk, time.Duration(rebootMs)*time.Millisecond, time.Duration(latencyMs)*time.Millisecond, int64(bandwidth))
		h := fl.Handler()
		srv.handler.Store(&h)
		_, _ = srv.take()

		goodSum := sha256.Sum256(body)
		if sum == "" {
			sum = hex.EncodeToString(goodSum[:])
		}
		st := newFuzzTracker(fl)
		for round := range 1 + int(rounds%3) {
			raw := fuzzRequest(srv, method, target, version, sum, auth, offset, length, body, round)
			if !srv.send(t, raw) {
				t.Fatalf("round %d: no answer and no hang-up within 10s to %q", round, raw[:min(len(raw), 300)])
			}
			log, errs := srv.take()
			if strings.Contains(errs, "panic") {
				t.Fatalf("round %d: the server logged a panic:\n%s", round, errs)
			}
			for _, s := range log {
				st.check(t, s, hex.EncodeToString(goodSum[:]))
			}
			_ = clk.Sleep(t.Context(), time.Duration(advanceMs)*time.Millisecond)
		}
		_ = clk.Sleep(t.Context(), fl.reboot+time.Millisecond) // every install ends
		st.checkStats(t)
	})
}

// newFuzzFleet builds the fleet of fuzzFaults on clk.
func newFuzzFleet(t *testing.T, clk clock, reboot, latency time.Duration, bandwidth int64) *Fleet {
	var inv []Device
	for id := range fuzzFaults {
		inv = append(inv, Device{ID: id, Status: statusOnline, FirmwareVersion: "1.0.0"})
	}
	fl, err := newFleet(Config{Inventory: inv, Token: fuzzToken, Reboot: reboot, Latency: latency, Bandwidth: bandwidth}, clk)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range fl.devices {
		nd := newDevice(Device{ID: d.id, Status: d.status, FirmwareVersion: d.version}, fuzzFaults[d.id])
		fl.devices[i], fl.byID[d.id] = nd, nd
	}
	return fl
}

// fuzzRequest is the raw request of a round. Offset "auto" asks the device
// (HEAD /update) how much it holds and resumes from there; an offset that
// is a byte count within the body sends the body from there. Length "="
// declares the bytes sent, "cut" declares them but sends half of them in
// the first round, anything else is sent as is.
func fuzzRequest(srv *fuzzServer, method, target, version, sum, auth, offset, length string, body []byte, round int) []byte {
	if offset == "auto" {
		offset = ""
		if held := srv.heldOffset(target, version, sum, auth); held > 0 {
			offset = strconv.FormatInt(held, 10)
		}
	}
	if k, err := strconv.Atoi(offset); err == nil && k >= 0 && k <= len(body) {
		body = body[k:]
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n", method, target)
	for _, h := range [][2]string{{"X-Firmware-Version", version}, {"X-Firmware-SHA256", sum}, {"Authorization", auth}, {"Upload-Offset", offset}} {
		if h[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
	}
	switch length {
	case "=":
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	case "cut":
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		if round == 0 {
			body = body[:len(body)/2]
		}
	case "":
	default:
		fmt.Fprintf(&b, "Content-Length: %s\r\n", length)
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// heldOffset asks the device of target how much of the image it holds.
func (s *fuzzServer) heldOffset(target, version, sum, auth string) int64 {
	base, ok := strings.CutSuffix(target, "/update")
	if !ok {
		return 0
	}
	req, err := http.NewRequest(http.MethodHead, s.srv.URL+base+"/update", nil)
	if err != nil {
		return 0
	}
	for k, v := range map[string]string{"X-Firmware-Version": version, "X-Firmware-SHA256": sum, "Authorization": auth} {
		if v != "" && !strings.ContainsAny(v, "\r\n") {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	n, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return n
}

// fuzzTracker follows what the devices must be: the version each runs
// and the uploads each accepted.
type fuzzTracker struct {
	fleet    *Fleet
	version  map[string]string
	accepted map[string]int64
}

func newFuzzTracker(fl *Fleet) *fuzzTracker {
	st := &fuzzTracker{fleet: fl, version: map[string]string{}, accepted: map[string]int64{}}
	for id := range fuzzFaults {
		st.version[id] = "1.0.0"
	}
	return st
}

// Codes each route may answer; 0 is a cut connection.
var fuzzCodes = map[string][]int{
	"POST /devices/{id}/update": {0, 200, 202, 400, 401, 403, 404, 409, 422, 429, 503}, // 429: fail-429 devices
	"HEAD /devices/{id}/update": {0, 200, 400, 401, 404, 405},
	"GET /devices/{id}/version": {0, 200, 404, 503},
	"GET /devices/{id}/health":  {0, 200, 404, 503},
	"GET /_fleet/inventory":     {200},
	"GET /_fleet/stats":         {200},
	"":                          {301, 307, 308, 400, 404, 405}, // net/http's own answers
}

func (st *fuzzTracker) check(t *testing.T, s served, goodSum string) {
	t.Helper()
	if s.panicked != nil {
		t.Fatalf("%s %q panicked: %v\n%s", s.pattern, s.id, s.panicked, s.panickedAtStack)
	}
	codes, known := fuzzCodes[s.pattern]
	if !known {
		return // a route this test does not know yet
	}
	if !slices.Contains(codes, s.code) {
		t.Fatalf("%s %q answered %d, not one of %v: %s", s.pattern, s.id, s.code, codes, s.body)
	}
	if s.pattern != "" && len(s.body) > 0 && !json.Valid(s.body) {
		t.Fatalf("%s %q answered %d with a body that is not JSON: %q", s.pattern, s.id, s.code, s.body)
	}
	if !strings.Contains(s.pattern, "/devices/{id}/") {
		return
	}
	fault, exists := fuzzFaults[s.id]
	switch {
	case !exists:
		if s.code != http.StatusNotFound {
			t.Fatalf("%s for unknown device %q answered %d, want 404", s.pattern, s.id, s.code)
		}
		return
	case fault == FaultOffline && s.code != 0:
		t.Fatalf("%s: the offline device answered %d: %s", s.pattern, s.code, s.body)
	case s.code == 0 && fault != FaultOffline && !(fault == FaultDrop && strings.HasPrefix(s.pattern, "POST")):
		t.Fatalf("%s: device %q hung up without being offline or dropping", s.pattern, s.id)
	}
	switch {
	case s.pattern == "POST /devices/{id}/update" && s.code == http.StatusAccepted:
		if fault == FaultFail4xx {
			t.Fatalf("the forbidden device accepted an upload")
		}
		if strings.ToLower(s.sum) != goodSum {
			t.Fatalf("device %q accepted an image announced as %q whose SHA-256 is %s", s.id, s.sum, goodSum)
		}
		st.accepted[s.id]++
		if fault != FaultWrongVersion {
			st.version[s.id] = s.version
		}
	case s.pattern == "POST /devices/{id}/update" && s.code == http.StatusOK:
		if s.version != st.version[s.id] {
			t.Fatalf("device %q on %q answered already-installed to %q", s.id, st.version[s.id], s.version)
		}
	case s.pattern == "GET /devices/{id}/version" && s.code == http.StatusOK:
		var v versionReply
		if err := json.Unmarshal(s.body, &v); err != nil || v.Version != st.version[s.id] || v.State != "idle" {
			t.Fatalf("device %q answered /version %s, want version %q and idle", s.id, s.body, st.version[s.id])
		}
	}
}

// checkStats: once every reboot is over, each device ran one install per
// accepted upload, no more than its uploads, and runs the version of its
// last accepted upload.
func (st *fuzzTracker) checkStats(t *testing.T) {
	t.Helper()
	stats := st.fleet.Stats()
	if stats.Totals.Devices != len(fuzzFaults) || len(stats.Devices) != len(fuzzFaults) {
		t.Fatalf("stats of %d devices, want %d", len(stats.Devices), len(fuzzFaults))
	}
	for _, d := range stats.Devices {
		if d.Installs != st.accepted[d.ID] || d.Installs > d.Uploads || d.Bytes < 0 {
			t.Fatalf("device %s: %d installs, %d uploads, %d bytes; %d uploads accepted", d.ID, d.Installs, d.Uploads, d.Bytes, st.accepted[d.ID])
		}
		if d.Version != st.version[d.ID] {
			t.Fatalf("device %s runs %q, want %q", d.ID, d.Version, st.version[d.ID])
		}
	}
}
