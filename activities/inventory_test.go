package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// sampleInventory is a small registry in the product's inventory format.
func sampleInventory() []workflows.InventoryDevice {
	return []workflows.InventoryDevice{
		{ID: "pos-nyc-001", Name: "Times Square 1", Address: "https://pos-nyc-001.example.com:8443/", Status: "online",
			FirmwareVersion: "2.3.1", Location: "New York, NY", Metadata: map[string]string{"region": "northeast", "store_id": "NYC-001"}},
		{ID: "pos-nyc-002", Address: "http://10.0.0.2:8080", Status: "offline", FirmwareVersion: "2.1.0",
			Metadata: map[string]string{"region": "northeast"}},
		{ID: "pos-bos-001", Address: "http://10.0.1.1", Status: "online", FirmwareVersion: "2.4.0",
			Metadata: map[string]string{"region": "northeast", "ring": "canary"}},
		{ID: "pos-sfo-001", Address: "http://10.0.2.1", Status: "online", FirmwareVersion: "2.2.0-rc.1",
			Metadata: map[string]string{"region": "west"}},
		{ID: "kiosk-sfo-002", Address: "http://10.0.2.2", Status: "maintenance", FirmwareVersion: "custom-build",
			Metadata: map[string]string{"region": "west"}},
	}
}

func writeJSONFile(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return writeFile(t, string(data))
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inventory.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func serveInventory(t *testing.T, content string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(content))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/inventory.json"
}

func TestLoadInventorySources(t *testing.T) {
	t.Parallel()
	want := sampleInventory()
	data, err := json.Marshal(want)
	require.NoError(t, err)
	path := writeFile(t, string(data))
	client := activities.NewHTTPClient(nil)

	for name, src := range map[string]string{
		"path":     path,
		"file url": "file://" + path,
		"http url": serveInventory(t, string(data)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := activities.LoadInventory(context.Background(), client, src)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestLoadInventoryFromDevicemock(t *testing.T) {
	t.Parallel()
	f, srv := startFleet(t, fleet.Config{Devices: 12, Offline: 0.25, Seed: 7})
	got, err := activities.LoadInventory(context.Background(), activities.NewHTTPClient(nil), srv.URL+"/_fleet/inventory")
	require.NoError(t, err)
	require.Len(t, got, f.Len())
	offline := 0
	for i, d := range got {
		require.Equal(t, fmt.Sprintf("dev-%05d", i+1), d.ID)
		require.Equal(t, deviceURL(srv, d.ID), d.Address)
		require.Equal(t, oldVersion, d.FirmwareVersion)
		require.NotEmpty(t, d.Metadata["region"])
		if d.Status == "offline" {
			offline++
		}
	}
	require.Equal(t, 3, offline, "a quarter of the fleet is offline")
}

func TestLoadInventoryProblems(t *testing.T) {
	t.Parallel()
	client := activities.NewHTTPClient(nil)
	invalid := []struct {
		name, content string
		parts         []string
	}{
		{"malformed json", `[{"id": "a", "address": "http://a"`, []string{"not a JSON array of devices"}},
		{"not an array", `{"devices": []}`, []string{"not a JSON array of devices"}},
		{"wrong field type", `[{"id": 7, "address": "http://a"}]`, []string{"not a JSON array of devices"}},
		{"duplicate id", `[{"id":"a","address":"http://a"},{"id":"b","address":"http://b"},{"id":"a","address":"http://c"}]`,
			[]string{"device id a appears twice"}},
		{"missing id", `[{"id":"a","address":"http://a"},{"address":"http://b"}]`, []string{"device #2 has no id"}},
		{"empty address", `[{"id":"a"}]`, []string{`device a: address "" is not an http(s) URL`}},
		{"relative address", `[{"id":"a","address":"10.0.0.1:80"}]`, []string{`device a: address "10.0.0.1:80"`}},
		{"ftp address", `[{"id":"a","address":"ftp://10.0.0.1"}]`, []string{"ftp://10.0.0.1", "not an http(s) URL"}},
		{"address without host", `[{"id":"a","address":"http://"}]`, []string{`"http://"`}},
		{"unparseable address", `[{"id":"a","address":"http://[::1"}]`, []string{"device a: address"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.content)
			_, err := activities.LoadInventory(context.Background(), client, path)
			var invErr *activities.InventoryError
			require.True(t, errors.As(err, &invErr), "want an InventoryError, got %T: %v", err, err)
			for _, p := range tc.parts {
				require.Contains(t, err.Error(), p)
			}
			require.Contains(t, err.Error(), path, "the error names the inventory")

			// Through the activity: a permanent InvalidInventory failure.
			_, err = newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: path, Limit: 10})
			requirePermanent(t, err, workflows.ErrInventory, tc.parts...)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "nope.json")
		_, err := newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: missing, Limit: 10})
		requirePermanent(t, err, workflows.ErrInventory, "nope.json", "not readable", "no such file")
	})

	t.Run("http 404 is permanent", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		_, err := newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: srv.URL + "/inv.json", Limit: 10})
		requirePermanent(t, err, workflows.ErrInventory, "404")
	})

	t.Run("http 503 is transient", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		_, err := newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: srv.URL + "/inv.json", Limit: 10})
		requireTransient(t, err, "inventory", "503", "(attempt 1)")
	})

	t.Run("unreachable http is transient", func(t *testing.T) {
		t.Parallel()
		src := deadServer(t) + "/inv.json"
		_, err := activities.LoadInventory(context.Background(), client, src)
		require.Error(t, err)
		var invErr *activities.InventoryError
		require.False(t, errors.As(err, &invErr), "an unreachable server is not a content problem")

		_, err = newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: src, Limit: 10})
		requireTransient(t, err, "inventory", "unreachable")
	})
}

// listAll pages through ListTargets with the given limit.
func listAll(t *testing.T, h *harness, req workflows.ListTargetsRequest) (all []workflows.Target, pages []workflows.TargetPage) {
	t.Helper()
	for range 1000 {
		page, err := h.list(req)
		require.NoError(t, err)
		pages = append(pages, page)
		all = append(all, page.Targets...)
		if !page.More {
			return all, pages
		}
		require.NotEmpty(t, page.Targets, "More without targets would never end")
		req.After = page.Targets[len(page.Targets)-1].Key
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func TestListTargetsPaging(t *testing.T) {
	t.Parallel()
	_, srv := startFleet(t, fleet.Config{Devices: 25})
	h := newHarness(t)
	inv := srv.URL + "/_fleet/inventory"

	for _, limit := range []int{1, 4, 5, 25, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			all, pages := listAll(t, h, workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: inv, Limit: limit})
			require.Len(t, pages, max(1, (25+limit-1)/limit))
			for i, p := range pages {
				require.Equal(t, 25, p.Selected)
				require.LessOrEqual(t, len(p.Targets), limit)
				require.Equal(t, i < len(pages)-1, p.More)
			}
			require.Len(t, all, 25)
			seen := map[string]bool{}
			for i, tg := range all {
				require.False(t, seen[tg.ID], "%s listed twice", tg.ID)
				seen[tg.ID] = true
				require.Equal(t, workflows.OrderKey(rolloutID, tg.ID), tg.Key)
				require.Equal(t, deviceURL(srv, tg.ID), tg.Address)
				if i > 0 {
					require.Less(t, all[i-1].Key, tg.Key, "OrderKey order")
				}
			}
			// The order is the rollout's hash order, not the file's.
			ids := make([]string, len(all))
			for i, tg := range all {
				ids[i] = tg.ID
			}
			require.False(t, sort.StringsAreSorted(ids), "order spreads over the fleet")
		})
	}

	t.Run("another rollout, another order", func(t *testing.T) {
		a, _ := listAll(t, h, workflows.ListTargetsRequest{RolloutID: "r-a", Inventory: inv, Limit: 100})
		b, _ := listAll(t, h, workflows.ListTargetsRequest{RolloutID: "r-b", Inventory: inv, Limit: 100})
		require.NotEqual(t, a[0].ID+a[1].ID+a[2].ID, b[0].ID+b[1].ID+b[2].ID)
	})

	t.Run("past the end", func(t *testing.T) {
		page, err := h.list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: inv, Limit: 10, After: "~"})
		require.NoError(t, err)
		require.Empty(t, page.Targets)
		require.False(t, page.More)
		require.Equal(t, 25, page.Selected)
	})

	t.Run("selector", func(t *testing.T) {
		all, pages := listAll(t, h, workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: inv, Limit: 2,
			Selector: workflows.Selector{Tags: map[string]string{"ring": "a"}}})
		ids := make([]string, len(all))
		for i, tg := range all {
			ids[i] = tg.ID
		}
		slices.Sort(ids)
		require.Equal(t, []string{"dev-00001", "dev-00011", "dev-00021"}, ids)
		require.Len(t, pages, 2)
		require.Equal(t, 3, pages[0].Selected)
	})
}

// Devices before the cursor may change (a new firmware_version once they
// are updated) without shifting what is left to do.
func TestListTargetsCursorIsStable(t *testing.T) {
	t.Parallel()
	devices := make([]workflows.InventoryDevice, 12)
	for i := range devices {
		devices[i] = workflows.InventoryDevice{ID: fmt.Sprintf("d%02d", i), Address: "http://10.0.0.1", FirmwareVersion: "1.0.0"}
	}
	path := writeJSONFile(t, devices)
	h := newHarness(t)
	req := workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: "file://" + path, Limit: 5,
		Selector: workflows.Selector{VersionBelow: "2.0.0"}}
	first, err := h.list(req)
	require.NoError(t, err)
	require.Len(t, first.Targets, 5)
	require.True(t, first.More)

	// The first page got updated; the inventory says so now.
	done := map[string]bool{}
	for _, tg := range first.Targets {
		done[tg.ID] = true
	}
	for i := range devices {
		if done[devices[i].ID] {
			devices[i].FirmwareVersion = "2.0.0"
		}
	}
	require.NoError(t, os.WriteFile(path, mustJSON(t, devices), 0o600))

	req.After = first.Targets[len(first.Targets)-1].Key
	rest, _ := listAll(t, newHarness(t), req)
	require.Len(t, rest, 7, "every remaining device, once")
	for _, tg := range rest {
		require.False(t, done[tg.ID])
		require.Greater(t, tg.Key, req.After)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return data
}

func TestSelectTargets(t *testing.T) {
	t.Parallel()
	inv := sampleInventory()
	ids := func(sel workflows.Selector) []string {
		var out []string
		for _, tg := range activities.SelectTargets(inv, rolloutID, sel) {
			out = append(out, tg.ID)
		}
		slices.Sort(out)
		return out
	}
	require.Equal(t, []string{"kiosk-sfo-002", "pos-bos-001", "pos-nyc-001", "pos-nyc-002", "pos-sfo-001"}, ids(workflows.Selector{}))
	require.Equal(t, []string{"pos-bos-001", "pos-nyc-001", "pos-nyc-002"},
		ids(workflows.Selector{Tags: map[string]string{"region": "northeast"}}))
	require.Equal(t, []string{"pos-bos-001"},
		ids(workflows.Selector{Tags: map[string]string{"region": "northeast", "ring": "canary"}}), "every tag must match")
	require.Empty(t, ids(workflows.Selector{Tags: map[string]string{"ring": "missing"}}))
	require.Equal(t, []string{"pos-bos-001", "pos-nyc-001", "pos-sfo-001"}, ids(workflows.Selector{Status: []string{"online"}}))
	require.Equal(t, []string{"kiosk-sfo-002", "pos-nyc-002"}, ids(workflows.Selector{Status: []string{"offline", "maintenance"}}))
	require.Equal(t, []string{"pos-nyc-002", "pos-sfo-001"}, ids(workflows.Selector{IDs: []string{"pos-sfo-001", "pos-nyc-002", "unknown"}}))
	// versionBelow: semantic order, pre-releases before releases, devices
	// without a semantic version never match.
	require.Equal(t, []string{"pos-nyc-001", "pos-nyc-002", "pos-sfo-001"}, ids(workflows.Selector{VersionBelow: "2.4.0"}))
	require.Equal(t, []string{"pos-nyc-002", "pos-sfo-001"}, ids(workflows.Selector{VersionBelow: "2.2.0"}))
	require.Equal(t, []string{"pos-nyc-001"},
		ids(workflows.Selector{VersionBelow: "2.4.0", Status: []string{"online"}, Tags: map[string]string{"region": "northeast"}}))

	targets := activities.SelectTargets(inv, rolloutID, workflows.Selector{IDs: []string{"pos-nyc-001"}})
	require.Equal(t, []workflows.Target{{ID: "pos-nyc-001", Address: "https://pos-nyc-001.example.com:8443",
		Key: workflows.OrderKey(rolloutID, "pos-nyc-001")}}, targets, "the address loses its trailing slash")

	// The order does not depend on the order of the file.
	shuffled := slices.Clone(inv)
	slices.Reverse(shuffled)
	require.Equal(t, activities.SelectTargets(inv, rolloutID, workflows.Selector{}),
		activities.SelectTargets(shuffled, rolloutID, workflows.Selector{}))
}

func TestListTargetsAppliesSelector(t *testing.T) {
	t.Parallel()
	path := writeJSONFile(t, sampleInventory())
	page, err := newHarness(t).list(workflows.ListTargetsRequest{RolloutID: rolloutID, Inventory: path, Limit: 10,
		Selector: workflows.Selector{Status: []string{"online"}, VersionBelow: "2.4.0"}})
	require.NoError(t, err)
	require.Equal(t, 2, page.Selected)
	require.False(t, page.More)
	got := []string{page.Targets[0].ID, page.Targets[1].ID}
	slices.Sort(got)
	require.Equal(t, []string{"pos-nyc-001", "pos-sfo-001"}, got)
}

func TestRegisterUsesProductNames(t *testing.T) {
	t.Parallel()
	var names []string
	var suite testsuite.WorkflowTestSuite
	acts := &activities.Activities{Client: activities.NewHTTPClient(nil)}
	acts.Register(envRegistry{env: suite.NewTestActivityEnvironment(), names: &names})
	require.ElementsMatch(t, []string{"ListTargets", "PushFirmware", "VerifyVersion", "WatchDevice"}, names)
}
