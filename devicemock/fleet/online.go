package fleet

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// offline: the device does not answer, as it is offline and has not come
// back yet.
func (f *Fleet) offline(d *device) bool {
	return d.fault == FaultOffline && (f.onlineAt.IsZero() || f.clock.Now().Before(f.onlineAt))
}

// CheckInWhenOnline waits until the offline devices come back (Config
// OnlineAfter), then has each call checkinURL/<id> as a real device would
// on reconnecting, retrying a failed call a few times. It returns how many
// devices checked in; without OnlineAfter it returns 0 at once.
func (f *Fleet) CheckInWhenOnline(ctx context.Context, client *http.Client, checkinURL string) int {
	if f.onlineAt.IsZero() {
		return 0
	}
	if err := f.clock.Sleep(ctx, f.onlineAt.Sub(f.clock.Now())); err != nil {
		return 0
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	checkedIn := 0
	slots := make(chan struct{}, 8)
	for _, d := range f.devices {
		if d.fault != FaultOffline {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if checkIn(ctx, client, checkinURL, d.id) {
				mu.Lock()
				checkedIn++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return checkedIn
}

func checkIn(ctx context.Context, client *http.Client, checkinURL, id string) bool {
	target := strings.TrimSuffix(checkinURL, "/") + "/" + url.PathEscape(id)
	for attempt := 0; attempt < 5; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
		if err != nil {
			return false
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	return false
}
