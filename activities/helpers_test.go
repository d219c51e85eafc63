package activities_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

const (
	oldVersion    = "1.0.0"
	targetVersion = "2.0.0"
	rolloutID     = "fw-2.0.0"
	firstDevice   = "dev-00001"
)

// progress mirrors the PushFirmware heartbeat (JSON field names are the
// contract between attempts).
type progress struct {
	PreviousVersion string `json:"previousVersion,omitempty"`
	Uploading       bool   `json:"uploading"`
	ConfirmedOffset int64  `json:"confirmedOffset,omitempty"`
	BytesSent       int64  `json:"bytesSent"`
}

// ---------------------------------------------------------------- env

// envOptions tune the test activity environment.
type envOptions struct {
	token            string
	keys             signing.Keys
	client           *http.Client
	sources          *http.Client
	heartbeatTimeout time.Duration // what activity.GetInfo reports
	attempt          int32         // what activity.GetInfo reports
	background       context.Context
	details          any // heartbeat details of an "earlier attempt"
	onHeartbeat      func(details []any)
	metrics          client.MetricsHandler
}

type envOption func(*envOptions)

func withToken(tok string) envOption               { return func(o *envOptions) { o.token = tok } }
func withKeys(keys ...ed25519.PublicKey) envOption { return func(o *envOptions) { o.keys = keys } }
func withClient(c *http.Client) envOption          { return func(o *envOptions) { o.client = c } }
func withSources(c *http.Client) envOption         { return func(o *envOptions) { o.sources = c } }
func withAttempt(n int32) envOption                { return func(o *envOptions) { o.attempt = n } }
func withBackground(c context.Context) envOption   { return func(o *envOptions) { o.background = c } }
func withDetails(d any) envOption                  { return func(o *envOptions) { o.details = d } }
func withHeartbeatTimeout(d time.Duration) envOption {
	return func(o *envOptions) { o.heartbeatTimeout = d }
}
func withHeartbeatHook(f func([]any)) envOption     { return func(o *envOptions) { o.onHeartbeat = f } }
func withMetrics(h client.MetricsHandler) envOption { return func(o *envOptions) { o.metrics = h } }

// harness is one activity environment with its registered activities.
type harness struct {
	t    *testing.T
	env  *testsuite.TestActivityEnvironment
	acts *activities.Activities
	hb   *heartbeatLog
}

func newHarness(t *testing.T, opts ...envOption) *harness {
	t.Helper()
	var o envOptions
	for _, opt := range opts {
		opt(&o)
	}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(quietLogger)
	if o.metrics != nil {
		suite.SetMetricsHandler(o.metrics)
	}
	env := suite.NewTestActivityEnvironment()
	env.SetTestTimeout(30 * time.Second)
	client := o.client
	if client == nil {
		client = activities.NewHTTPClient(nil)
	}
	acts := &activities.Activities{Client: client, Sources: o.sources, DeviceToken: o.token, FirmwareKeys: o.keys}
	acts.Register(envRegistry{env: env})
	hb := &heartbeatLog{hook: o.onHeartbeat}
	wo := worker.Options{
		Interceptors: []interceptor.WorkerInterceptor{&infoInterceptor{
			heartbeatTimeout: o.heartbeatTimeout,
			attempt:          o.attempt,
			log:              hb,
		}},
	}
	if o.background != nil {
		wo.BackgroundActivityContext = o.background
	}
	env.SetWorkerOptions(wo)
	if o.details != nil {
		env.SetHeartbeatDetails(o.details)
	}
	return &harness{t: t, env: env, acts: acts, hb: hb}
}

func (h *harness) push(req workflows.PushRequest) (workflows.PushResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(workflows.PushFirmwareActivity, req)
	var res workflows.PushResult
	if err == nil {
		require.NoError(h.t, val.Get(&res))
	}
	return res, err
}

func (h *harness) mustPush(req workflows.PushRequest) workflows.PushResult {
	h.t.Helper()
	res, err := h.push(req)
	require.NoError(h.t, err)
	return res
}

func (h *harness) verify(req workflows.VerifyRequest) (workflows.VerifyResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(workflows.VerifyVersionActivity, req)
	var res workflows.VerifyResult
	if err == nil {
		require.NoError(h.t, val.Get(&res))
	}
	return res, err
}

func (h *harness) list(req workflows.ListTargetsRequest) (workflows.TargetPage, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(workflows.ListTargetsActivity, req)
	var page workflows.TargetPage
	if err == nil {
		require.NoError(h.t, val.Get(&page))
	}
	return page, err
}

// quietLogger drops the SDK's activity logs ("Activity error." for every
// expected failure); set ACTIVITY_TEST_LOGS=1 to see them.
var quietLogger = func() log.Logger {
	if os.Getenv("ACTIVITY_TEST_LOGS") != "" {
		return log.NewStructuredLogger(slog.Default())
	}
	return log.NewStructuredLogger(slog.New(slog.DiscardHandler))
}()

// envRegistry lets Activities.Register (which takes a worker.Registry)
// register into the test environment, so tests run the activities under
// the names a real worker gives them.
type envRegistry struct {
	worker.Registry // only activity registration is used
	env             *testsuite.TestActivityEnvironment
	names           *[]string
}

func (r envRegistry) RegisterActivityWithOptions(a any, opts activity.RegisterOptions) {
	if r.names != nil {
		*r.names = append(*r.names, opts.Name)
	}
	r.env.RegisterActivityWithOptions(a, opts)
}

// heartbeatLog records every activity.RecordHeartbeat call (the SDK's own
// listener only sees the throttled ones that would reach the server).
type heartbeatLog struct {
	mu      sync.Mutex
	entries [][]byte // JSON of the first detail
	hook    func([]any)
}

func (l *heartbeatLog) add(details []any) {
	if l.hook != nil {
		l.hook(details)
	}
	if len(details) == 0 {
		return
	}
	data, err := json.Marshal(details[0])
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, data)
}

func (l *heartbeatLog) progress(t *testing.T) []progress {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]progress, len(l.entries))
	for i, e := range l.entries {
		require.NoError(t, json.Unmarshal(e, &out[i]), "heartbeat %s", e)
	}
	return out
}

func (l *heartbeatLog) strings(t *testing.T) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		require.NoError(t, json.Unmarshal(e, &out[i]), "heartbeat %s", e)
	}
	return out
}

// infoInterceptor lets a test give the activity a heartbeat timeout and an
// attempt number (TestActivityEnvironment has no option for either: it
// schedules every activity with HeartbeatTimeout 0 and Attempt 1), and
// records every heartbeat.
type infoInterceptor struct {
	interceptor.WorkerInterceptorBase
	heartbeatTimeout time.Duration
	attempt          int32
	log              *heartbeatLog
}

func (w *infoInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &infoInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, w: w}
}

type infoInbound struct {
	interceptor.ActivityInboundInterceptorBase
	w *infoInterceptor
}

func (i *infoInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&infoOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, w: i.w})
}

type infoOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	w *infoInterceptor
}

func (o *infoOutbound) GetInfo(ctx context.Context) activity.Info {
	info := o.Next.GetInfo(ctx)
	if o.w.heartbeatTimeout > 0 {
		info.HeartbeatTimeout = o.w.heartbeatTimeout
	}
	if o.w.attempt > 0 {
		info.Attempt = o.w.attempt
	}
	return info
}

func (o *infoOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.w.log.add(details)
	o.Next.RecordHeartbeat(ctx, details...)
}

// ---------------------------------------------------------------- errors

// appError unwraps the activity error to its ApplicationError.
func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an ApplicationError, got %T: %v", err, err)
	return ae
}

// requirePermanent checks a non-retryable failure of type typ whose
// message contains every part.
func requirePermanent(t *testing.T, err error, typ string, parts ...string) *temporal.ApplicationError {
	t.Helper()
	ae := appError(t, err)
	require.Equal(t, typ, ae.Type(), "message: %s", ae.Message())
	require.True(t, ae.NonRetryable(), "%s should be non-retryable: %s", typ, ae.Message())
	for _, p := range parts {
		require.Contains(t, ae.Message(), p)
	}
	return ae
}

// requireTransient checks a retryable DeviceUnavailable failure whose
// message contains every part.
func requireTransient(t *testing.T, err error, parts ...string) *temporal.ApplicationError {
	t.Helper()
	ae := appError(t, err)
	want := "DeviceUnavailable"
	if strings.Contains(ae.Message(), "device unreachable") {
		want = workflows.ErrDeviceUnreachable // no connection at all: maybe offline
	}
	require.Equal(t, want, ae.Type(), "message: %s", ae.Message())
	require.False(t, ae.NonRetryable(), "should be retryable: %s", ae.Message())
	for _, p := range parts {
		require.Contains(t, ae.Message(), p)
	}
	return ae
}

// ---------------------------------------------------------------- images

// image is a firmware image known by its bytes' source, size and digest.
type image struct {
	size   int64
	sha256 string
	seed   uint64
}

// imageBytes is a deterministic, incompressible stream of size bytes,
// generated on the fly: no test holds a whole image in memory.
func imageBytes(seed uint64, size int64) io.Reader {
	var key [32]byte
	binaryPutSeed(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), size)
}

func binaryPutSeed(b []byte, seed uint64) {
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
}

func newImage(t *testing.T, seed uint64, size int64) image {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, imageBytes(seed, size))
	require.NoError(t, err)
	require.Equal(t, size, n)
	return image{size: size, sha256: hex.EncodeToString(h.Sum(nil)), seed: seed}
}

func (im image) reader() io.Reader { return imageBytes(im.seed, im.size) }

// writeImage writes im to a file and returns its file:// URL.
func writeImage(t *testing.T, im image) (path, fileURL string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "firmware-"+strconv.FormatUint(im.seed, 10)+".bin")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = io.Copy(f, im.reader())
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.True(t, filepath.IsAbs(path))
	return path, "file://" + path
}

func (im image) firmware(url string) workflows.Firmware {
	return workflows.Firmware{Version: targetVersion, URL: url, SHA256: im.sha256, Size: im.size}
}

// firmwareServer serves an image at /fw.bin, streamed from its generator.
type firmwareServer struct {
	*httptest.Server
	gets    atomic.Int64
	status  int  // answer this instead of the image when set
	chunked bool // no Content-Length
	retry   string
}

func (s *firmwareServer) handler(im image) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.gets.Add(1)
		if r.URL.Path != "/fw.bin" {
			http.NotFound(w, r)
			return
		}
		if s.status != 0 {
			if s.retry != "" {
				w.Header().Set("Retry-After", s.retry)
			}
			http.Error(w, http.StatusText(s.status), s.status)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if !s.chunked {
			w.Header().Set("Content-Length", strconv.FormatInt(im.size, 10))
		}
		_, _ = io.Copy(w, im.reader())
	}
}

func newFirmwareServer(t *testing.T, im image, configure func(*firmwareServer)) *firmwareServer {
	t.Helper()
	s := &firmwareServer{}
	if configure != nil {
		configure(s)
	}
	s.Server = httptest.NewServer(s.handler(im))
	t.Cleanup(s.Close)
	return s
}

func (s *firmwareServer) url() string { return s.URL + "/fw.bin" }

// ---------------------------------------------------------------- devices

// startFleet serves a devicemock fleet over real HTTP.
func startFleet(t *testing.T, cfg fleet.Config) (*fleet.Fleet, *httptest.Server) {
	t.Helper()
	if cfg.Version == "" && cfg.Inventory == nil {
		cfg.Version = oldVersion
	}
	if cfg.Devices == 0 && cfg.Inventory == nil {
		cfg.Devices = 1
	}
	f, err := fleet.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func deviceURL(srv *httptest.Server, id string) string { return srv.URL + "/devices/" + id }

func deviceStats(t *testing.T, f *fleet.Fleet, id string) fleet.DeviceStats {
	t.Helper()
	for _, d := range f.Stats().Devices {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no device %s in fleet stats", id)
	return fleet.DeviceStats{}
}

// eventually polls cond every 20ms for up to wait.
func eventually(t *testing.T, wait time.Duration, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, wait, 20*time.Millisecond, msg)
}

func pushRequest(address string, fw workflows.Firmware) workflows.PushRequest {
	return workflows.PushRequest{RolloutID: rolloutID, DeviceID: firstDevice, Address: address, Firmware: fw}
}

// upload is what a fake device saw of one POST /update.
type upload struct {
	header        http.Header
	contentLength int64
	bytes         int64
	sha256        string
	err           error
}

// fakeDevice is a hand-written device for answers devicemock cannot give.
// It answers GET /version from version (or versionFn) and POST /update
// with updateFn, after consuming the body unless updateFn does it itself.
type fakeDevice struct {
	*httptest.Server
	mu             sync.Mutex
	version        string
	versionFn      func(w http.ResponseWriter, r *http.Request)
	updateFn       func(w http.ResponseWriter, r *http.Request, body *countingBody)
	headFn         func(w http.ResponseWriter, r *http.Request) // HEAD /update; 404 when nil
	listener       func(net.Listener) net.Listener              // wraps the listener before the server starts
	versionHeaders []http.Header
	headHeaders    []http.Header
	uploads        []upload
	other          atomic.Int64 // requests to any other path
}

// countingBody reads an upload, counting and hashing it.
type countingBody struct {
	r      io.Reader
	err    error // the first read error other than io.EOF
	n      atomic.Int64
	h      hashWriter
	onRead func(total int64)
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	b.h.Write(p[:n])
	total := b.n.Add(int64(n))
	if b.onRead != nil && n > 0 {
		b.onRead(total)
	}
	return n, err
}

func newFakeDevice(t *testing.T, configure func(*fakeDevice)) *fakeDevice {
	t.Helper()
	d := &fakeDevice{version: oldVersion}
	if configure != nil {
		configure(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices/fake/version", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.versionHeaders = append(d.versionHeaders, r.Header.Clone())
		version := d.version
		d.mu.Unlock()
		if d.versionFn != nil {
			d.versionFn(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"version":"`+version+`","state":"idle"}`)
	})
	mux.HandleFunc("POST /devices/fake/update", func(w http.ResponseWriter, r *http.Request) {
		body := &countingBody{r: r.Body, h: sha256.New()}
		rec := upload{header: r.Header.Clone(), contentLength: r.ContentLength}
		if d.updateFn != nil {
			d.updateFn(w, r, body)
		} else {
			_, rec.err = io.Copy(io.Discard, body)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"accepted"}`)
		}
		if rec.err == nil && d.updateFn != nil {
			rec.err = body.err
		}
		rec.bytes = body.n.Load()
		rec.sha256 = hex.EncodeToString(body.h.Sum(nil))
		d.mu.Lock()
		d.uploads = append(d.uploads, rec)
		d.mu.Unlock()
	})
	mux.HandleFunc("HEAD /devices/fake/update", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.headHeaders = append(d.headHeaders, r.Header.Clone())
		d.mu.Unlock()
		if d.headFn == nil {
			d.other.Add(1)
			http.NotFound(w, r)
			return
		}
		d.headFn(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.other.Add(1)
		http.NotFound(w, r)
	})
	d.Server = httptest.NewUnstartedServer(mux)
	if d.listener != nil {
		d.Listener = d.listener(d.Listener)
	}
	d.Start()
	t.Cleanup(d.Close)
	return d
}

func (d *fakeDevice) address() string { return d.URL + "/devices/fake" }

func (d *fakeDevice) recorded() []upload {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]upload(nil), d.uploads...)
}

func (d *fakeDevice) offsetProbes() []http.Header {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]http.Header(nil), d.headHeaders...)
}

func (d *fakeDevice) probes() []http.Header {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]http.Header(nil), d.versionHeaders...)
}

// deadServer returns the base URL of a listener that hangs up on every
// connection at once: a host that cannot be talked to. (A closed
// httptest server would do too, but its port may be reused by another
// test's server meanwhile.)
func deadServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

// answer writes code with an optional JSON body.
func answer(w http.ResponseWriter, code int, body string) {
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
