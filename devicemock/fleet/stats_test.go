package fleet

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestStatsRoute(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 4, Version: "1.0.0", Seed: 5, Fail4xx: 0.25})
	bad := devicesWith(f, FaultFail4xx)[0]
	good := devicesWith(f, "")
	small, large := image(1000), image(3000)
	wantCode(t, "upload 1", upload{device: good[0], version: "2.0.0", body: small}.mustSend(t, srv), http.StatusAccepted)
	wantCode(t, "upload 2", upload{device: good[1], version: "2.0.0", body: large}.mustSend(t, srv), http.StatusAccepted)
	wantCode(t, "upload 3", upload{device: good[1], version: "2.0.0", body: large}.mustSend(t, srv), http.StatusOK)
	wantCode(t, "upload 4", upload{device: bad, version: "2.0.0", body: small}.mustSend(t, srv), http.StatusForbidden)

	resp, err := srv.Client().Get(srv.URL + "/_fleet/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var stats Stats
	if err := json.Unmarshal(raw, &stats); err != nil {
		t.Fatal(err)
	}
	want := Totals{Devices: 4, Installs: 2, Uploads: 4, Bytes: int64(len(small) + len(large))}
	if stats.Totals != want {
		t.Errorf("totals %+v, want %+v", stats.Totals, want)
	}
	for i, d := range stats.Devices {
		if d.ID != generateInventory(4, "")[i].ID {
			t.Errorf("device %d is %s: stats not sorted by id", i, d.ID)
		}
	}
	// Devices without a fault carry no "fault" key at all.
	if n := strings.Count(string(raw), `"fault"`); n != 1 || !strings.Contains(string(raw), `"fault":"fail-4xx"`) {
		t.Errorf("stats JSON has %d fault keys, want exactly one fail-4xx: %s", n, raw)
	}
}
