package fleet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Offline devices come back after OnlineAfter and each checks in once.
func TestOfflineDevicesComeBackAndCheckIn(t *testing.T) {
	clk := newFakeClock()
	f, err := newFleet(Config{Devices: 10, Version: "1.0.0", Offline: 0.3, OnlineAfter: time.Minute}, clk)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, f)
	var offline []string
	for _, d := range f.Stats().Devices {
		if d.Fault == FaultOffline {
			offline = append(offline, d.ID)
		}
	}
	if len(offline) != 3 {
		t.Fatalf("%d offline devices, want 3", len(offline))
	}
	if _, err := get(t, srv, "/devices/"+offline[0]+"/version"); err == nil {
		t.Fatalf("%s answered before coming back", offline[0])
	}

	var mu sync.Mutex
	var checkedIn []string
	checkins := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost {
			checkedIn = append(checkedIn, r.URL.Path)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer checkins.Close()

	// The fake clock jumps the minute when CheckInWhenOnline sleeps on it.
	if n := f.CheckInWhenOnline(context.Background(), checkins.Client(), checkins.URL+"/checkin"); n != 3 {
		t.Fatalf("%d devices checked in, want 3", n)
	}
	slices.Sort(checkedIn)
	for i, id := range offline {
		if checkedIn[i] != "/checkin/"+id {
			t.Errorf("check-in %d = %s, want /checkin/%s", i, checkedIn[i], id)
		}
	}
	if r := mustGet(t, srv, "/devices/"+offline[0]+"/version"); r.code != http.StatusOK {
		t.Errorf("%s after coming back: %d, want 200", offline[0], r.code)
	}
}

// Without OnlineAfter, offline devices stay offline and nobody checks in.
func TestOfflineDevicesStayOfflineByDefault(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 4, Version: "1.0.0", Offline: 0.5})
	if n := f.CheckInWhenOnline(context.Background(), http.DefaultClient, "http://127.0.0.1:1/checkin"); n != 0 {
		t.Fatalf("%d check-ins without OnlineAfter", n)
	}
	for _, d := range f.Stats().Devices {
		if d.Fault == FaultOffline {
			if _, err := get(t, srv, "/devices/"+d.ID+"/version"); err == nil {
				t.Errorf("%s answered", d.ID)
			}
		}
	}
}
