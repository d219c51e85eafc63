package fleet

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// countingReader adds every byte read to count as it goes, so stats show
// partial uploads too.
type countingReader struct {
	r     io.Reader
	count *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.count.Add(int64(n))
	return n, err
}

// maxThrottleChunk bounds a single read, so a throttled upload advances in
// steps of at most this many bytes (or a tenth of a second's worth, if less).
const maxThrottleChunk = 32 << 10

// throttledReader caps reads at rate bytes per second: after each chunk it
// sleeps until the time by which that many bytes were due at the cap.
type throttledReader struct {
	ctx   context.Context
	r     io.Reader
	rate  int64
	chunk int
	clock clock
	start time.Time
	read  int64
}

func newThrottledReader(ctx context.Context, r io.Reader, rate int64, clk clock) *throttledReader {
	return &throttledReader{
		ctx:   ctx,
		r:     r,
		rate:  rate,
		chunk: int(max(1, min(rate/10, maxThrottleChunk))),
		clock: clk,
		start: clk.Now(),
	}
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if len(p) > t.chunk {
		p = p[:t.chunk]
	}
	n, err := t.r.Read(p)
	t.read += int64(n)
	// Float seconds: read*time.Second would overflow past ~9 GB.
	due := t.start.Add(time.Duration(float64(t.read) / float64(t.rate) * float64(time.Second)))
	if wait := due.Sub(t.clock.Now()); wait > 0 {
		if sleepErr := t.clock.Sleep(t.ctx, wait); sleepErr != nil && err == nil {
			err = sleepErr
		}
	}
	return n, err
}
