//go:build e2e

package main

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// chaos is what a chaosProxy does to the traffic it relays between the
// worker and the devices, like Shopify's toxiproxy: latency, a bandwidth
// cap, a reset or a stall after so many bytes, a slow close, a corrupted
// byte. Byte counts are per connection, worker to device.
type chaos struct {
	latency    time.Duration // before each chunk, both ways
	bandwidth  int64         // bytes/s, worker to device; 0: unlimited
	resetAfter int64         // reset the connection (RST) after this many bytes
	resets     int32         // how many connections to reset; 0: all that get there
	stallAfter int64         // stop reading from the worker, keep its connection open (half-open)
	stalls     int32         // how many connections to stall
	stallFor   time.Duration // then drop the stalled connection
	swallow    bool          // relay uploads, never their answers (as many as stalls)
	slowClose  time.Duration // hold a close this long before passing it on
	corruptAt  int64         // flip the byte at this offset of each connection
}

// chaosProxy is a TCP proxy in front of devicemock.
type chaosProxy struct {
	ln       net.Listener
	upstream string
	chaos    chaos
	sent     atomic.Int64 // worker-to-device bytes relayed
	resets   atomic.Int32
	stalls   atomic.Int32
}

func startChaosProxy(t *testing.T, upstream string, c chaos) *chaosProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{ln: ln, upstream: upstream, chaos: c}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close() })
	return p
}

func (p *chaosProxy) addr() string { return p.ln.Addr().String() }

func (p *chaosProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.relay(client)
	}
}

// link is one relayed connection.
type link struct {
	client, device net.Conn
	relayed        atomic.Int64  // worker-to-device bytes so far
	stalled        chan struct{} // closed when the link stalls
	stallOver      chan struct{} // closed when the stalled link is dropped
}

func (l *link) isStalled() bool {
	select {
	case <-l.stalled:
		return true
	default:
		return false
	}
}

func (p *chaosProxy) relay(client net.Conn) {
	device, err := net.Dial("tcp", p.upstream)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, device: device, stalled: make(chan struct{}), stallOver: make(chan struct{})}
	done := make(chan struct{}, 2)
	go func() { p.toDevice(l); done <- struct{}{} }()
	go func() { p.toWorker(l); done <- struct{}{} }()
	<-done
	if p.chaos.slowClose > 0 {
		time.Sleep(p.chaos.slowClose)
	}
	_ = client.Close()
	_ = device.Close()
	<-done
}

// toDevice relays worker to device, where most faults happen.
func (p *chaosProxy) toDevice(l *link) {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		if n > 0 {
			chunk, relayed := buf[:n], l.relayed.Load()
			if at := p.chaos.corruptAt; at > 0 && relayed <= at && at < relayed+int64(n) {
				chunk[at-relayed] ^= 0xff
			}
			if p.chaos.resetAfter > 0 && relayed+int64(n) > p.chaos.resetAfter && p.take(&p.resets, p.chaos.resets) {
				p.forward(l, chunk[:p.chaos.resetAfter-relayed])
				reset(l.client)
				return
			}
			if p.chaos.stallAfter > 0 && relayed+int64(n) > p.chaos.stallAfter && p.take(&p.stalls, p.chaos.stalls) {
				p.forward(l, chunk[:p.chaos.stallAfter-relayed])
				// The line dies without a reset. The worker's side stays
				// open with its window shut, so its writes block; the
				// device sees its upload end early, keeps what it got and
				// may take a retry.
				close(l.stalled)
				if tcp, ok := l.device.(*net.TCPConn); ok {
					_ = tcp.CloseWrite()
				}
				time.Sleep(p.chaos.stallFor)
				reset(l.client)
				close(l.stallOver)
				return
			}
			p.pace(n)
			if !p.forward(l, chunk) {
				return
			}
		}
		if err != nil {
			if tcp, ok := l.device.(*net.TCPConn); ok {
				_ = tcp.CloseWrite()
			}
			return
		}
	}
}

func (p *chaosProxy) forward(l *link, chunk []byte) bool {
	if _, err := l.device.Write(chunk); err != nil {
		return false
	}
	l.relayed.Add(int64(len(chunk)))
	p.sent.Add(int64(len(chunk)))
	return true
}

// take uses one of a limited number of faults; limit 0 means no limit.
func (p *chaosProxy) take(used *atomic.Int32, limit int32) bool {
	return limit == 0 || used.Add(1) <= limit
}

// pace applies latency and the bandwidth cap to a chunk of n bytes.
func (p *chaosProxy) pace(n int) {
	delay := p.chaos.latency
	if p.chaos.bandwidth > 0 {
		delay += time.Duration(float64(n) / float64(p.chaos.bandwidth) * float64(time.Second))
	}
	if delay > 0 {
		time.Sleep(delay)
	}
}

// swallowAfter is how much of a request the worker must have sent before
// the device's answers are swallowed: more than any request's headers, so
// the version probe before an upload still gets its answer.
const swallowAfter = 64 << 10

// toWorker relays device to worker with the latency; on a swallowing
// proxy, answers to an upload never arrive.
func (p *chaosProxy) toWorker(l *link) {
	buf := make([]byte, 32<<10)
	swallowing := false
	for {
		n, err := l.device.Read(buf)
		if l.isStalled() {
			// Nothing reaches the worker over a dead line, and its side
			// stays open until the stall ends.
			if err != nil {
				<-l.stallOver
				return
			}
			continue
		}
		if n > 0 {
			if p.chaos.swallow && !swallowing && l.relayed.Load() > swallowAfter {
				swallowing = p.take(&p.stalls, p.chaos.stalls)
			}
			if p.chaos.latency > 0 {
				time.Sleep(p.chaos.latency)
			}
			if !swallowing {
				if _, err := l.client.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes with a TCP RST, as a broken line would.
func reset(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = c.Close()
}
