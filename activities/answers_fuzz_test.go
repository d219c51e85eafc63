package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// reasonLimit bounds a device failure's message: the step, the status,
// the 200-byte excerpts of the answer's body and Location, and the
// attempt fit in it; a device cannot grow it past that with its answers.
const reasonLimit = 700

// fuzzAnswer is one answer of the fuzzed device.
type fuzzAnswer struct {
	code int
	// head is "Name: value" lines. Raw answers are written by hand on the
	// hijacked connection: "HTTP/1.1 <code> " + head + blank line + body,
	// so head starts with the reason phrase and may break every rule.
	head string
	body []byte
	raw  bool
}

// fuzzDevice serves the fuzzer's answers on /devices/fake/version and
// /update (POST, and HEAD for a retry's resume); any other request (a
// followed redirect) is counted, and so is any request to the elsewhere
// host that "{elsewhere}" in a header names.
type fuzzDevice struct {
	dev, elsewhere *httptest.Server
	version        atomic.Pointer[fuzzAnswer]
	update         atomic.Pointer[fuzzAnswer]
	held           atomic.Pointer[fuzzAnswer] // HEAD /update
	strays         atomic.Int64
}

func newFuzzDevice(f *testing.F) *fuzzDevice {
	d := &fuzzDevice{}
	d.elsewhere = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d.strays.Add(1)
		answer(w, http.StatusOK, `{"version":"2.0.0","state":"idle","status":"already-installed"}`)
	}))
	f.Cleanup(d.elsewhere.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices/fake/version", func(w http.ResponseWriter, r *http.Request) {
		d.write(w, r, d.version.Load())
	})
	mux.HandleFunc("POST /devices/fake/update", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		d.write(w, r, d.update.Load())
	})
	mux.HandleFunc("HEAD /devices/fake/update", func(w http.ResponseWriter, r *http.Request) {
		d.write(w, r, d.held.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.strays.Add(1)
		http.NotFound(w, r)
	})
	d.dev = httptest.NewServer(mux)
	d.dev.Config.ErrorLog = quietServerLog
	f.Cleanup(d.dev.Close)
	return d
}

func (d *fuzzDevice) write(w http.ResponseWriter, _ *http.Request, a *fuzzAnswer) {
	head := strings.ReplaceAll(a.head, "{elsewhere}", d.elsewhere.URL)
	if a.raw {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		defer func() { _ = conn.Close() }()
		_, _ = fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n\r\n", a.code, head)
		_, _ = buf.Write(a.body)
		_ = buf.Flush()
		return
	}
	for line := range strings.SplitSeq(head, "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok {
			w.Header().Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	w.WriteHeader(a.code)
	_, _ = w.Write(a.body)
}

// quietServerLog drops net/http's complaints about the fuzzer's headers.
var quietServerLog = stdlog.New(io.Discard, "", 0)

// fuzzImage writes a small image and returns its firmware.
func fuzzImage(f *testing.F) workflows.Firmware {
	data := []byte(strings.Repeat("firmware!", 114))
	path := filepath.Join(f.TempDir(), "fw.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return workflows.Firmware{Version: targetVersion, URL: "file://" + path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

// FuzzDeviceAnswers: a device answers GET /version and POST /update with
// whatever the fuzzer makes (status, headers, body; or raw bytes after
// the status code). PushFirmware and VerifyVersion never panic or hang,
// follow no redirect, and end in success or in an ApplicationError of a
// device type whose message is one short line of valid UTF-8: it becomes
// the device's failure reason in the workflow history (a protobuf string,
// which must be UTF-8) and in the operator's terminal.
func FuzzDeviceAnswers(f *testing.F) {
	idle := []byte(`{"version":"1.0.0","state":"idle"}`)
	type seed struct {
		v, u fuzzAnswer
	}
	for _, s := range []seed{
		{fuzzAnswer{200, "Content-Type: application/json", idle, false}, fuzzAnswer{202, "", []byte(`{"status":"accepted"}`), false}},
		{fuzzAnswer{200, "", []byte(`{"version":"2.0.0","state":"idle"}`), false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{200, "", []byte(`{"status":"already-installed"}`), false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{200, "", []byte(`{"status":"` + strings.Repeat("long ", 400) + `"}`), false}},
		{fuzzAnswer{200, "", []byte("\xff\xfe{garbage"), false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "", []byte(`{"version":"1.0.0\n2.0.0","state":"in\u001b[31mstalling"}`), false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "", []byte(`{"version":"` + strings.Repeat("9", 2000) + `"}`), false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{503, "Retry-After: 5", []byte(`{"error":"installing"}`), false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{429, "Retry-After: 99999999999999", nil, false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{429, "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{429, "Retry-After: Fri, 31 Dec 9999 23:59:59 GMT", nil, false}},
		{fuzzAnswer{302, "Location: {elsewhere}/devices/fake/version", nil, false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{307, "Location: {elsewhere}/update", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{301, "Location: /" + strings.Repeat("x", 3000), nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{308, "Location: \xff\xfe", nil, false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{403, "", []byte("refused \xe2\x82 \x00\x1b[2J " + strings.Repeat("é", 150)), false}},
		{fuzzAnswer{200, "", idle, false}, fuzzAnswer{422, "Content-Length: 99", []byte(`short`), false}},
		{fuzzAnswer{200, "Content-Length: 2", idle, false}, fuzzAnswer{202, "", nil, false}},
		{fuzzAnswer{200, "Transfer-Encoding: chunked", idle, false}, fuzzAnswer{500, "", nil, false}},
		{fuzzAnswer{200, "OK\r\nContent-Length: 34", idle, true}, fuzzAnswer{202, "Accepted\r\nContent-Length: 0", nil, true}},
		{fuzzAnswer{200, "OK", idle, true}, fuzzAnswer{202, "\xff\xfe reason", nil, true}},
		{fuzzAnswer{200, "OK\r\nX: \xff", idle, true}, fuzzAnswer{503, "Busy " + strings.Repeat("z", 2000) + "\r\nContent-Length: 0", nil, true}},
		{fuzzAnswer{200, "OK\r\nbad header line \xff", idle, true}, fuzzAnswer{202, "", nil, true}},
		{fuzzAnswer{101, "", nil, false}, fuzzAnswer{103, "Link: </x>", nil, false}},
		{fuzzAnswer{999, "", nil, false}, fuzzAnswer{204, "", []byte("no body allowed"), false}},
	} {
		f.Add(uint16(s.v.code), s.v.head, s.v.body, s.v.raw, uint16(s.u.code), s.u.head, s.u.body, s.u.raw, false, uint16(0), "")
	}
	// Retries, which first ask the device how much of the image it holds.
	for _, held := range []struct {
		code uint16
		head string
	}{
		{200, "Upload-Offset: 500"}, {200, "Upload-Offset: 1025"}, {200, "Upload-Offset: 1026"}, {200, "Upload-Offset: -3"},
		{200, "Upload-Offset: 99999999999999999999"}, {200, "Upload-Offset:  7 "}, {200, ""}, {405, ""}, {302, "Location: {elsewhere}"},
	} {
		f.Add(uint16(200), "", idle, false, uint16(202), "", []byte(nil), false, true, held.code, held.head)
	}
	f.Add(uint16(200), "", idle, false, uint16(409), "Upload-Offset: 12", []byte(nil), false, true, uint16(200), "Upload-Offset: 100")
	f.Add(uint16(200), "", idle, false, uint16(422), "", []byte(nil), false, true, uint16(200), "Upload-Offset: 100")
	f.Add(uint16(200), "", idle, false, uint16(409), "Upload-Offset: 0", []byte(nil), false, true, uint16(200), "Upload-Offset: 1")

	dev := newFuzzDevice(f)
	fw := fuzzImage(f)
	client := activities.NewHTTPClient(nil)
	f.Fuzz(func(t *testing.T, vCode uint16, vHead string, vBody []byte, vRaw bool, uCode uint16, uHead string, uBody []byte, uRaw bool,
		retry bool, hCode uint16, hHead string) {
		dev.version.Store(&fuzzAnswer{code: statusCode(vCode), head: vHead, body: vBody, raw: vRaw})
		dev.update.Store(&fuzzAnswer{code: statusCode(uCode), head: uHead, body: uBody, raw: uRaw})
		dev.held.Store(&fuzzAnswer{code: statusCode(hCode), head: hHead})
		strays := dev.strays.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts := []envOption{withClient(client), withBackground(ctx)}
		if retry {
			opts = append(opts, withAttempt(2))
		}
		h := newHarness(t, opts...)

		start := time.Now()
		res, err := h.push(pushRequest(dev.dev.URL+"/devices/fake", fw))
		checkDeviceOutcome(t, "PushFirmware", err)
		if err == nil && (res.BytesSent < 0 || res.BytesSent > fw.Size) {
			t.Fatalf("PushFirmware sent %d bytes of a %d-byte image", res.BytesSent, fw.Size)
		}
		_, err = h.verify(workflows.VerifyRequest{DeviceID: firstDevice, Address: dev.dev.URL + "/devices/fake",
			Version: targetVersion, PreviousVersion: oldVersion, Within: time.Nanosecond}) // one poll
		checkDeviceOutcome(t, "VerifyVersion", err)
		if elapsed := time.Since(start); elapsed > 30*time.Second { // a hang detector, not a timing
			t.Fatalf("the device's answers held the activities for %s", elapsed)
		}
		if n := dev.strays.Load() - strays; n != 0 {
			t.Fatalf("%d requests went elsewhere than GET /version and POST /update: a redirect was followed", n)
		}
	})
}

// statusCode maps any number onto the codes net/http lets a handler write.
func statusCode(n uint16) int {
	if n >= 100 && n <= 999 {
		return int(n)
	}
	return 100 + int(n)%900
}

// checkDeviceOutcome: success, or an ApplicationError of a device error
// type, retryable exactly when transient, with a short one-line UTF-8
// message and a sane retry delay.
func checkDeviceOutcome(t *testing.T, activity string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %T, want an ApplicationError: %v", activity, err, err)
	}
	switch ae.Type() {
	case workflows.ErrDeviceRefused, workflows.ErrChecksumMismatch, workflows.ErrWrongVersion, workflows.ErrBadDeviceAnswer:
		if !ae.NonRetryable() {
			t.Fatalf("%s: %s must be non-retryable: %s", activity, ae.Type(), ae.Message())
		}
	case "DeviceUnavailable", workflows.ErrDeviceUnreachable:
		if ae.NonRetryable() {
			t.Fatalf("%s: %s must be retryable: %s", activity, ae.Type(), ae.Message())
		}
	default:
		t.Fatalf("%s: unexpected error type %q (a panic or a hang?): %v", activity, ae.Type(), err)
	}
	checkReason(t, activity, ae.Message())
	if d := ae.NextRetryDelay(); d < 0 || d > 24*time.Hour {
		t.Fatalf("%s: next retry in %s: %s", activity, d, ae.Message())
	}
}

func checkReason(t *testing.T, activity, msg string) {
	t.Helper()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("%s: empty failure message", activity)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("%s: failure message is not UTF-8 (the failure cannot be sent to the server): %q", activity, msg)
	}
	if i := strings.IndexFunc(msg, unicode.IsControl); i >= 0 {
		t.Fatalf("%s: failure message has control character %q: %q", activity, msg[i:i+1], msg)
	}
	if len(msg) > reasonLimit {
		t.Fatalf("%s: failure message of %d bytes: %.300q...", activity, len(msg), msg)
	}
}

// The plain tests below cover malformed answers that the example-based
// tests in answers_test.go and verify_test.go do not.

// TestGarbageVersionAnswers: /version answers that are not a JSON
// {"version": ...} fail the probe and the verification at once as
// BadDeviceAnswer, with a clean reason, and nothing is uploaded.
func TestGarbageVersionAnswers(t *testing.T) {
	t.Parallel()
	im := newImage(t, 60, 1<<10)
	_, url := writeImage(t, im)
	for name, body := range map[string]string{
		"binary":             "\x00\xff\xfe\x1b[2J\xc3",
		"version not string": `{"version":240,"state":"idle"}`,
		"array":              `["2.0.0"]`,
		"null":               `null`,
		"empty version":      `{"version":"","state":"idle"}`,
		"empty body":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.versionFn = func(w http.ResponseWriter, _ *http.Request) { answer(w, http.StatusOK, body) }
			})
			_, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
			ae := requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "probe", "/version")
			checkReason(t, "PushFirmware", ae.Message())
			require.Empty(t, dev.recorded(), "nothing uploaded")

			_, err = newHarness(t).verify(verifyRequest(dev.address(), time.Minute))
			ae = requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "verify", "/version")
			checkReason(t, "VerifyVersion", ae.Message())
		})
	}
}

// TestDeviceAnswerTextIsCleaned: what a device says ends up in the
// failure reason only as one line of valid UTF-8, without control
// characters, cut at 200 bytes on a character boundary.
func TestDeviceAnswerTextIsCleaned(t *testing.T) {
	t.Parallel()
	im := newImage(t, 61, 1<<10)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
			_, _ = io.Copy(io.Discard, body)
			answer(w, http.StatusForbidden, "upload\r\nrefused\x00\x1b[31m \xff"+strings.Repeat("é", 300))
		}
	})
	_, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
	ae := requirePermanent(t, err, workflows.ErrDeviceRefused, "push: device answered 403 Forbidden: upload refused [31m \uFFFDéé")
	checkReason(t, "PushFirmware", ae.Message())
	require.True(t, strings.HasSuffix(ae.Message(), "é..."), "cut on a character boundary: %q", ae.Message())
	require.LessOrEqual(t, len(ae.Message()), len("push: device answered 403 Forbidden: ")+200+len("..."))
}

// TestHugeAnswersAreNotBuffered: a device that answers /version or
// /update with 10 MB gets at most the answer limit read (64 KiB to parse,
// 64 KiB drained), then the connection is closed: the worker neither
// buffers the body nor waits for its end. Socket buffers are kept small
// so the bytes the device manages to write measure what was read.
func TestHugeAnswersAreNotBuffered(t *testing.T) {
	t.Parallel()
	const huge = 10 << 20
	im := newImage(t, 62, 1<<10)
	_, url := writeImage(t, im)
	idle := `{"version":"1.0.0","state":"idle"}`
	cases := []struct {
		name           string
		version        func(w io.Writer) // /version 200 answer (nil: idle)
		versionCode    int
		update         func(w io.Writer) // /update answer body
		updateCode     int
		check          func(t *testing.T, res workflows.PushResult, err error)
		uploadExpected bool
	}{
		{name: "version garbage", versionCode: 200, version: func(w io.Writer) { _, _ = io.WriteString(w, "<") },
			check: func(t *testing.T, _ workflows.PushResult, err error) {
				requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "/version")
			}},
		{name: "version one huge string", versionCode: 200, version: func(w io.Writer) { _, _ = io.WriteString(w, `{"version":"`) },
			check: func(t *testing.T, _ workflows.PushResult, err error) {
				requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "/version")
			}},
		{name: "version then padding", versionCode: 200, version: func(w io.Writer) { _, _ = io.WriteString(w, idle+"\n") },
			updateCode: 202, uploadExpected: true,
			check: func(t *testing.T, _ workflows.PushResult, err error) { require.NoError(t, err) }},
		{name: "version 503", versionCode: 503,
			check: func(t *testing.T, _ workflows.PushResult, err error) { requireTransient(t, err, "probe", "503") }},
		{name: "update 202", updateCode: 202, uploadExpected: true,
			check: func(t *testing.T, _ workflows.PushResult, err error) { require.NoError(t, err) }},
		{name: "update 200 already installed", updateCode: 200, uploadExpected: true,
			update: func(w io.Writer) { _, _ = io.WriteString(w, `{"status":"already-installed"}`) },
			check: func(t *testing.T, res workflows.PushResult, err error) {
				require.NoError(t, err)
				require.True(t, res.AlreadyInstalled)
			}},
		{name: "update 403", updateCode: 403, uploadExpected: true,
			check: func(t *testing.T, _ workflows.PushResult, err error) {
				ae := requirePermanent(t, err, workflows.ErrDeviceRefused, "403")
				checkReason(t, "PushFirmware", ae.Message())
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var written, uploads atomic.Int64
			done := make(chan struct{}, 2)
			// hugeAnswer writes code, the prefix, then padding up to 10 MB
			// until the worker hangs up.
			hugeAnswer := func(w http.ResponseWriter, code int, prefix func(io.Writer)) {
				defer func() { done <- struct{}{} }()
				w.Header().Set("Content-Length", strconv.Itoa(huge))
				w.WriteHeader(code)
				cw := &countingWriter{w: w, n: &written}
				if prefix != nil {
					prefix(cw)
				}
				pad := []byte(strings.Repeat(" ", 32<<10))
				for written.Load() < huge {
					chunk := pad[:min(int64(len(pad)), huge-written.Load())]
					if _, err := cw.Write(chunk); err != nil {
						return
					}
				}
			}
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.listener = func(l net.Listener) net.Listener { return smallBufferListener{l} }
				if tc.versionCode != 0 {
					d.versionFn = func(w http.ResponseWriter, _ *http.Request) { hugeAnswer(w, tc.versionCode, tc.version) }
				}
				d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
					uploads.Add(1)
					_, _ = io.Copy(io.Discard, body)
					if tc.updateCode == 0 {
						answer(w, http.StatusAccepted, "")
						return
					}
					hugeAnswer(w, tc.updateCode, tc.update)
				}
			})
			client, read := smallBufferClient()
			res, err := newHarness(t, withClient(client)).push(pushRequest(dev.address(), im.firmware(url)))
			tc.check(t, res, err)
			select {
			case <-done:
			case <-time.After(time.Minute): // a hang detector, not a timing
				t.Fatalf("the device is still writing its answer: the worker kept the connection without reading it (%d bytes written)", written.Load())
			}
			require.Less(t, written.Load(), int64(1<<20), "the device wrote %d bytes of its answer: the worker read too much", written.Load())
			require.Less(t, read.Load(), int64(1<<20), "the worker read %d bytes in all", read.Load())
			require.Equal(t, tc.uploadExpected, uploads.Load() == 1)
		})
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// smallBufferListener gives accepted connections a small send buffer.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// smallBufferClient is the worker's client with small receive buffers,
// counting the bytes it reads from devices.
func smallBufferClient() (*http.Client, *atomic.Int64) {
	var read atomic.Int64
	client := activities.NewHTTPClient(nil)
	tr := client.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(16 << 10)
		}
		return &countingConn{Conn: c, read: &read}, nil
	}
	return client, &read
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestRedirectToAnotherHost: a device that redirects to another host, on
// /version or /update, is a BadDeviceAnswer; the other host hears nothing
// (a redirect could otherwise send the image and the token elsewhere).
func TestRedirectToAnotherHost(t *testing.T) {
	t.Parallel()
	im := newImage(t, 63, 1<<10)
	_, url := writeImage(t, im)
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		answer(w, http.StatusOK, `{"version":"2.0.0","state":"idle","status":"already-installed"}`)
	}))
	t.Cleanup(other.Close)
	redirect := func(code int, to string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Location", other.URL+to)
			answer(w, code, "")
		}
	}
	for _, tc := range []struct {
		name            string
		version, update func(w http.ResponseWriter)
		verify          bool
	}{
		{name: "probe 302", version: redirect(302, "/devices/fake/version")},
		{name: "update 307", update: redirect(307, "/devices/fake/update")},
		{name: "update 308", update: redirect(308, "/devices/fake/update")},
		{name: "verify 301", version: redirect(301, "/devices/fake/version"), verify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := newFakeDevice(t, func(d *fakeDevice) {
				if tc.version != nil {
					d.versionFn = func(w http.ResponseWriter, _ *http.Request) { tc.version(w) }
				}
				if tc.update != nil {
					d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
						_, _ = io.Copy(io.Discard, body)
						tc.update(w)
					}
				}
			})
			h := newHarness(t, withToken("s3cret"))
			var err error
			if tc.verify {
				_, err = h.verify(verifyRequest(dev.address(), time.Minute))
			} else {
				_, err = h.push(pushRequest(dev.address(), im.firmware(url)))
			}
			ae := requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "redirecting to "+other.URL, "not followed")
			checkReason(t, tc.name, ae.Message())
			require.Zero(t, elsewhere.Load(), "the other host received a request")
			require.Zero(t, dev.other.Load())
		})
	}
}

// TestAnswersWithMissingOrOddHeaders: answers without the headers they
// usually carry, or with unusable ones, are still classified.
func TestAnswersWithMissingOrOddHeaders(t *testing.T) {
	t.Parallel()
	im := newImage(t, 64, 1<<10)
	_, url := writeImage(t, im)
	for _, tc := range []struct {
		name   string
		code   int
		header map[string]string
		body   string
		check  func(t *testing.T, res workflows.PushResult, err error)
	}{
		{"redirect without Location", 302, nil, "", func(t *testing.T, _ workflows.PushResult, err error) {
			requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "302 Found redirecting without a Location (redirects are not followed)")
		}},
		{"429 without Retry-After", 429, nil, "", retryIn(0)},
		{"429 Retry-After garbage", 429, map[string]string{"Retry-After": "soon"}, "", retryIn(0)},
		{"429 Retry-After negative", 429, map[string]string{"Retry-After": "-5"}, "", retryIn(0)},
		{"429 Retry-After fraction", 429, map[string]string{"Retry-After": "1.5"}, "", retryIn(0)},
		{"429 Retry-After in the past", 429, map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "", retryIn(0)},
		{"429 Retry-After overflowing", 429, map[string]string{"Retry-After": "99999999999999"}, "", retryIn(time.Hour)},
		{"429 Retry-After year 9999", 429, map[string]string{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, "", retryIn(time.Hour)},
		{"200 without Content-Type", 200, nil, `{"version":"2.0.0","state":"idle"}`, alreadyInstalled},
		{"200 as text/html", 200, map[string]string{"Content-Type": "text/html"}, `{"version":"2.0.0"}`, alreadyInstalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, func(d *fakeDevice) {
				d.versionFn = func(w http.ResponseWriter, _ *http.Request) {
					for k, v := range tc.header {
						w.Header().Set(k, v)
					}
					w.WriteHeader(tc.code)
					_, _ = io.WriteString(w, tc.body)
				}
			})
			res, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
			tc.check(t, res, err)
			require.Empty(t, dev.recorded(), "the probe decided: nothing uploaded")
		})
	}
}

func retryIn(d time.Duration) func(t *testing.T, _ workflows.PushResult, err error) {
	return func(t *testing.T, _ workflows.PushResult, err error) {
		ae := requireTransient(t, err, "probe: device answered 429")
		require.Equal(t, d, ae.NextRetryDelay())
	}
}

func alreadyInstalled(t *testing.T, res workflows.PushResult, err error) {
	require.NoError(t, err)
	require.True(t, res.AlreadyInstalled)
}
