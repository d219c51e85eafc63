package fleet

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGeneratedDevices(t *testing.T) {
	f, err := New(Config{Devices: 12, Version: "3.1.4"})
	if err != nil {
		t.Fatal(err)
	}
	inv := f.Inventory("http://127.0.0.1:9000/")
	if len(inv) != 12 {
		t.Fatalf("%d devices, want 12", len(inv))
	}
	want := Device{
		ID: "dev-00001", Name: "Device 1", Address: "http://127.0.0.1:9000/devices/dev-00001",
		Status: "online", FirmwareVersion: "3.1.4", Location: "Lab",
		Metadata: map[string]string{"region": "northeast", "ring": "a"},
	}
	if !reflect.DeepEqual(inv[0], want) {
		t.Errorf("first device = %+v, want %+v", inv[0], want)
	}
	if inv[11].ID != "dev-00012" || inv[11].Name != "Device 12" {
		t.Errorf("last device = %s %q, want dev-00012 \"Device 12\"", inv[11].ID, inv[11].Name)
	}
	regions := map[string]int{}
	rings := map[string]int{}
	for _, d := range inv {
		regions[d.Metadata["region"]]++
		rings[d.Metadata["ring"]]++
	}
	if len(regions) != len(generatedRegions) || rings["a"] != 2 || rings["b"] != 10 {
		t.Errorf("regions %v rings %v, want all %d regions and rings a:2 b:10", regions, rings, len(generatedRegions))
	}
}

func TestGeneratedIDsWidenForLargeFleets(t *testing.T) {
	f, err := New(Config{Devices: 123456, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	inv := f.Inventory("")
	if inv[0].ID != "dev-000001" || inv[len(inv)-1].ID != "dev-123456" {
		t.Errorf("ids %s..%s, want dev-000001..dev-123456", inv[0].ID, inv[len(inv)-1].ID)
	}
}

func TestInventoryRoute(t *testing.T) {
	_, srv := startFleet(t, Config{Devices: 3, Version: "1.0.0"})
	wantCode(t, "upload", upload{device: "dev-00002", version: "2.0.0", body: image(100)}.mustSend(t, srv), http.StatusAccepted)

	var inv []Device
	getJSON(t, srv, "/_fleet/inventory", &inv)
	if len(inv) != 3 {
		t.Fatalf("%d devices, want 3", len(inv))
	}
	for i, d := range inv {
		wantVersion := "1.0.0"
		if d.ID == "dev-00002" {
			wantVersion = "2.0.0" // no reboot time: the install is already over
		}
		if d.Address != srv.URL+"/devices/"+d.ID || d.FirmwareVersion != wantVersion || d.Status != "online" {
			t.Errorf("device %d = %+v, want address under %s, version %s, online", i, d, srv.URL, wantVersion)
		}
		if i > 0 && inv[i-1].ID >= d.ID {
			t.Errorf("inventory not sorted by id at %d", i)
		}
	}
	// The inventory's addresses are usable as they are.
	r, err := srv.Client().Get(inv[0].Address + "/health")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("GET address/health: status %d", r.StatusCode)
	}
}

func TestFleetFileMode(t *testing.T) {
	path := writeFile(t, `[
  {"id": "pos-nyc-002", "name": "Times Square 2", "address": "https://pos-nyc-002.example.com:8443",
   "status": "offline", "firmware_version": "2.3.0", "location": "New York, NY",
   "metadata": {"region": "northeast", "store_id": "NYC-002"}},
  {"id": "pos-nyc-001", "name": "Times Square 1", "address": "https://pos-nyc-001.example.com:8443",
   "status": "online", "firmware_version": "2.3.1", "location": "New York, NY",
   "metadata": {"region": "northeast", "store_id": "NYC-001"}},
  {"id": "pos-bos-001", "name": "Back Bay", "status": "maintenance", "firmware_version": "2.2.0"}
]`)
	records, err := LoadInventory(path)
	if err != nil {
		t.Fatal(err)
	}
	f, srv := startFleet(t, Config{Inventory: records, Reboot: 20 * time.Millisecond})

	var inv []Device
	getJSON(t, srv, "/_fleet/inventory", &inv)
	want := []Device{
		{ID: "pos-bos-001", Name: "Back Bay", Status: "maintenance", FirmwareVersion: "2.2.0"},
		{ID: "pos-nyc-001", Name: "Times Square 1", Status: "online", FirmwareVersion: "2.3.1", Location: "New York, NY",
			Metadata: map[string]string{"region": "northeast", "store_id": "NYC-001"}},
		{ID: "pos-nyc-002", Name: "Times Square 2", Status: "offline", FirmwareVersion: "2.3.0", Location: "New York, NY",
			Metadata: map[string]string{"region": "northeast", "store_id": "NYC-002"}},
	}
	if len(inv) != len(want) {
		t.Fatalf("%d devices, want %d", len(inv), len(want))
	}
	for i := range want {
		want[i].Address = srv.URL + "/devices/" + want[i].ID
		if !reflect.DeepEqual(inv[i], want[i]) {
			t.Errorf("device %d = %+v, want %+v", i, inv[i], want[i])
		}
	}

	if _, err := get(t, srv, "/devices/pos-nyc-002/version"); err == nil {
		t.Error("device offline in the fleet file answered")
	}
	if got := deviceStats(t, f, "pos-nyc-002").Fault; got != FaultOffline {
		t.Errorf("fault of offline device = %q, want offline", got)
	}
	wantCode(t, "upload", upload{device: "pos-nyc-001", version: "2.4.0", body: image(1000)}.mustSend(t, srv), http.StatusAccepted)
	if v := waitForVersion(t, srv, "pos-nyc-001"); v != "2.4.0" {
		t.Errorf("version = %q, want 2.4.0", v)
	}
}

func TestFleetFileFaultsApplyOnTop(t *testing.T) {
	records := make([]Device, 10)
	for i := range records {
		records[i] = Device{ID: "d" + string(rune('a'+i)), Status: "online", FirmwareVersion: "1"}
	}
	f, err := New(Config{Inventory: records, Fail4xx: 0.3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(devicesWith(f, FaultFail4xx)); n != 3 {
		t.Errorf("%d fail-4xx devices, want 3", n)
	}
	// Fault choice depends on the ids, not on the file's order.
	reversed := make([]Device, len(records))
	for i, d := range records {
		reversed[len(records)-1-i] = d
	}
	g, err := New(Config{Inventory: reversed, Fail4xx: 0.3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := devicesWith(f, FaultFail4xx), devicesWith(g, FaultFail4xx); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("file order changed the fail-4xx devices: %v vs %v", a, b)
	}
}

func TestLoadInventoryErrors(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"bad JSON":         {"[\n  {\"id\": \"a\",}\n]", ":2:15: invalid character '}'"},
		"wrong type":       {`[{"id": 5}]`, ":1:10: json: cannot unmarshal number"},
		"not an array":     {`{"id": "a"}`, "cannot unmarshal object"},
		"null":             {`null`, "want a JSON array of devices, got null"},
		"empty":            {`[]`, "no devices"},
		"missing id":       {`[{"id": "a"}, {"name": "x"}]`, "device #2: missing id"},
		"duplicate id":     {`[{"id": "a"}, {"id": "a"}]`, `device #2: duplicate id "a"`},
		"slash in id":      {`[{"id": "a/b"}]`, `device #1: id "a/b" must not contain '/'`},
		"empty file":       {``, "unexpected end of JSON input"},
		"trailing garbage": {`[{"id": "a"}] x`, "invalid character 'x' after top-level value"},
	} {
		path := writeFile(t, tc.content)
		_, err := LoadInventory(path)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, path) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q, want one line starting with the path and containing %q", name, msg, tc.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.json")
	if _, err := LoadInventory(missing); err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("missing file: error %v", err)
	}
}

func TestTenThousandDevices(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 10_000, Version: "1.0.0", Seed: 3, Offline: 0.01, Drop: 0.02})
	var inv []Device
	getJSON(t, srv, "/_fleet/inventory", &inv)
	if len(inv) != 10_000 || inv[9999].ID != "dev-10000" {
		t.Fatalf("inventory has %d devices ending %s, want 10000 ending dev-10000", len(inv), inv[len(inv)-1].ID)
	}
	offline := 0
	for _, d := range inv {
		if d.Status == "offline" {
			offline++
		}
	}
	if offline != 100 {
		t.Errorf("%d offline devices, want 100", offline)
	}
	id := devicesWith(f, "")[0]
	wantCode(t, "upload", upload{device: id, version: "2.0.0", body: image(1000)}.mustSend(t, srv), http.StatusAccepted)
	var stats Stats
	getJSON(t, srv, "/_fleet/stats", &stats)
	if stats.Totals.Devices != 10_000 || stats.Totals.Installs != 1 || len(stats.Devices) != 10_000 {
		t.Errorf("totals %+v with %d device lines, want 10000 devices and 1 install", stats.Totals, len(stats.Devices))
	}
}

func TestInventoryIsACopy(t *testing.T) {
	records := []Device{{ID: "a", Metadata: map[string]string{"k": "v"}}}
	f, err := New(Config{Inventory: records})
	if err != nil {
		t.Fatal(err)
	}
	records[0].Metadata["k"] = "changed by caller"
	f.Inventory("")[0].Metadata["k"] = "changed by reader"
	if got := f.Inventory("")[0].Metadata["k"]; got != "v" {
		t.Errorf("metadata = %q, want the fleet's own copy %q", got, "v")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Inventory entries must marshal to the registry's field names.
func TestDeviceJSONFieldNames(t *testing.T) {
	data, err := json.Marshal(Device{ID: "a", Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"a","name":"","address":"","status":"","firmware_version":"","location":"","metadata":{"k":"v"}}`
	if string(data) != want {
		t.Errorf("JSON %s, want %s", data, want)
	}
}
