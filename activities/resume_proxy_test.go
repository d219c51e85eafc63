package activities_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
)

// cuttingProxy forwards TCP to a device server and, its first cuts times,
// resets a connection once it has carried cutAfter bytes towards the
// device: the chaos proxy of the end-to-end tests, in process. The device
// side is closed cleanly, so the device reads all that was forwarded.
type cuttingProxy struct {
	target    string
	cutAfter  int64
	cutsLeft  atomic.Int64
	forwarded atomic.Int64 // bytes towards the device, over all connections
	ln        net.Listener
}

func newCuttingProxy(t *testing.T, target string, cutAfter int64, cuts int64) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cuttingProxy{target: target, cutAfter: cutAfter, ln: ln}
	p.cutsLeft.Store(cuts)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(client)
		}
	}()
	return p
}

func (p *cuttingProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cuttingProxy) pipe(client net.Conn) {
	device, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	go func() {
		_, _ = io.Copy(client, device)
		_ = client.Close()
	}()
	defer func() { _ = device.Close() }()
	buf := make([]byte, 32<<10)
	var carried int64
	for {
		n, err := client.Read(buf)
		chunk := buf[:n]
		cut := false
		if carried+int64(n) >= p.cutAfter && p.takeCut() {
			chunk, cut = chunk[:p.cutAfter-carried], true
		}
		if _, werr := device.Write(chunk); werr != nil {
			_ = client.Close()
			return
		}
		carried += int64(len(chunk))
		p.forwarded.Add(int64(len(chunk)))
		if cut {
			_ = client.(*net.TCPConn).SetLinger(0) // a reset, as a chaos proxy sends
			_ = client.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

// takeCut uses up one of the cuts, if any are left.
func (p *cuttingProxy) takeCut() bool {
	for {
		left := p.cutsLeft.Load()
		if left <= 0 {
			return false
		}
		if p.cutsLeft.CompareAndSwap(left, left-1) {
			return true
		}
	}
}

// heldOffset asks devicemock directly what it holds of im.
func heldOffset(t *testing.T, deviceAddr string, im image) int64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, deviceAddr+"/update", nil)
	require.NoError(t, err)
	req.Header.Set("X-Firmware-SHA256", im.sha256)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	require.NoError(t, err)
	return n
}

// An upload whose connection is reset three times completes on the fourth
// attempt, each retry resuming where the device stands: the device reads
// no byte twice, and the bytes through the proxy stay under 1.3 times the
// image.
func TestPushFirmwareResumesThroughResets(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	im := newImage(t, 47, size)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Reboot: 50 * time.Millisecond})
	proxy := newCuttingProxy(t, strings.TrimPrefix(srv.URL, "http://"), size/4, 3)
	req := pushRequest(proxy.url()+"/devices/"+firstDevice, im.firmware(url))

	var details any
	var held int64
	for attempt := int32(1); ; attempt++ {
		require.LessOrEqual(t, attempt, int32(4), "three cuts, then through")
		opts := []envOption{withAttempt(attempt)}
		if details != nil {
			opts = append(opts, withDetails(details))
		}
		h := newHarness(t, opts...)
		res, err := h.push(req)
		if err == nil {
			require.Equal(t, int32(4), attempt)
			require.Equal(t, im.size-held, res.BytesSent, "the last attempt sent the rest")
			break
		}
		requireTransient(t, err, "push")
		details = lastBeat(t, h)
		// The client sees the reset at once; the device settles when it
		// reads the end of what was forwarded. (Real retries back off.)
		before := held
		eventually(t, 5*time.Second, func() bool { held = heldOffset(t, deviceURL(srv, firstDevice), im); return held > before },
			"the device keeps what it received")
		require.Equal(t, deviceStats(t, f, firstDevice).Bytes, held, "the device read no byte twice")
	}

	eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
	st := deviceStats(t, f, firstDevice)
	t.Logf("device read %d bytes in %d uploads, proxy forwarded %d, image %d", st.Bytes, st.Uploads, proxy.forwarded.Load(), im.size)
	require.EqualValues(t, 4, st.Uploads)
	require.EqualValues(t, 1, st.Installs)
	require.Equal(t, im.size, st.Bytes, "each byte reached the device once")
	require.Less(t, float64(proxy.forwarded.Load()), 1.3*float64(im.size), "bytes sent through the proxy")
	require.Zero(t, heldOffset(t, deviceURL(srv, firstDevice), im), "an installed image leaves no partial")
}
