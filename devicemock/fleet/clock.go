package fleet

import (
	"context"
	"time"
)

// clock is the fleet's source of time, replaceable in tests so that latency
// and bandwidth can be checked without measuring wall time.
type clock interface {
	Now() time.Time
	// Sleep waits for d, returning early with ctx's error if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
