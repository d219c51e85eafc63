package activities_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// FuzzLoadInventory feeds arbitrary bytes to LoadInventory, from a file
// and over HTTP. It never panics; a refusal is an *InventoryError of one
// line of valid UTF-8 (it becomes the rollout's failure message); an
// inventory it accepts has unique ids and http(s) addresses, and paging
// through it with ListTargets returns each selected device exactly once,
// in rollout order, whatever the page size.
func FuzzLoadInventory(f *testing.F) {
	seeds := []string{
		`[{"id": "pos-nyc-001", "name": "Times Square 1",
		   "address": "https://pos-nyc-001.example.com:8443",
		   "status": "online", "firmware_version": "2.3.1", "location": "New York, NY",
		   "metadata": {"region": "northeast", "store_id": "NYC-001"}}]`,
		`[{"id":"a","address":"http://10.0.0.1/"},{"id":"b","address":"https://h:1","status":"offline"},
		  {"id":"c","address":"http://h/devices/c","firmware_version":"2.2.0-rc.1"}]`,
		`[]`, `null`, `{}`, `[{}]`, `[{"id":"a"}]`, `[{"id":"a","address":"ftp://h"}]`,
		`[{"id":"a","address":"http://h"},{"id":"a","address":"http://h"}]`,
		`[{"id":"a\nb","address":"http://h"},{"id":"a\nb","address":"http://h"}]`,
		`[{"id":"a","address":"http://h"}] trailing`,
		`[{"id":"a","address":"http://h","metadata":{"k":1}}]`,
		"[\xff]", `[{"id":"\ud800","address":"http://h"}]`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), "fw-2.4.0", uint8(i), i%2 == 0)
	}
	dir := f.TempDir()
	var served atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*served.Load())
	}))
	f.Cleanup(srv.Close)
	client := activities.NewHTTPClient(nil)
	acts := &activities.Activities{Client: client}

	f.Fuzz(func(t *testing.T, data []byte, rolloutID string, limit uint8, overHTTP bool) {
		file, err := os.CreateTemp(dir, "inventory-*.json")
		if err != nil {
			t.Fatal(err)
		}
		path := file.Name()
		defer func() { _ = os.Remove(path) }()
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		src := path
		if overHTTP {
			served.Store(&data)
			src = srv.URL + "/inventory.json"
		}

		devices, err := activities.LoadInventory(context.Background(), client, src)
		if err != nil {
			var inv *activities.InventoryError
			if !errors.As(err, &inv) {
				t.Fatalf("LoadInventory refused its content with %T, want *InventoryError: %v", err, err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) || !strings.HasPrefix(msg, "inventory "+src) {
				t.Fatalf("inventory error is not one line of UTF-8 naming the source: %q", msg)
			}
			return
		}
		seen := map[string]bool{}
		for _, d := range devices {
			if d.ID == "" || seen[d.ID] {
				t.Fatalf("accepted an inventory with an empty or repeated id %q", d.ID)
			}
			seen[d.ID] = true
			if u, err := url.Parse(d.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("accepted device %q with address %q", d.ID, d.Address)
			}
		}

		// Every device selected by the empty selector, each exactly once,
		// keys strictly increasing (the order the cursor relies on).
		all := activities.SelectTargets(devices, rolloutID, workflows.Selector{})
		if len(all) != len(devices) {
			t.Fatalf("the empty selector picked %d of %d devices", len(all), len(devices))
		}
		for i, tg := range all {
			if tg.Key != workflows.OrderKey(rolloutID, tg.ID) || tg.Address != strings.TrimRight(tg.Address, "/") {
				t.Fatalf("target %+v: wrong key or address", tg)
			}
			if i > 0 && all[i-1].Key >= tg.Key {
				t.Fatalf("targets out of order: %q then %q", all[i-1].Key, tg.Key)
			}
		}

		// Paging from the file, with a selector that keeps some devices.
		sel := workflows.Selector{}
		if limit&0x80 != 0 && len(devices) > 0 {
			sel.Status = []string{devices[0].Status}
		}
		want := activities.SelectTargets(devices, rolloutID, sel)
		pageSize := 1 + int(limit&0x7f)%5
		var got []workflows.Target
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("paging does not end: %d pages of %d for %d devices", pages, pageSize, len(want))
			}
			page, err := acts.ListTargets(context.Background(), workflows.ListTargetsRequest{
				RolloutID: rolloutID, Inventory: path, Selector: sel, After: after, Limit: pageSize,
			})
			if err != nil {
				t.Fatalf("ListTargets after %q: %v", after, err)
			}
			if page.Selected != len(want) || len(page.Targets) > pageSize || (page.More && len(page.Targets) != pageSize) {
				t.Fatalf("page after %q: %d targets, selected %d, more %v; want at most %d of %d", after, len(page.Targets), page.Selected, page.More, pageSize, len(want))
			}
			got = append(got, page.Targets...)
			if !page.More {
				break
			}
			after = page.Targets[len(page.Targets)-1].Key
		}
		if len(got) != len(want) {
			t.Fatalf("paging returned %d targets, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("paging target %d is %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}
