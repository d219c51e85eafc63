package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSelectorMatches(t *testing.T) {
	dev := func(id, status, version string, tags map[string]string) InventoryDevice {
		return InventoryDevice{ID: id, Status: status, FirmwareVersion: version, Metadata: tags}
	}
	ne := map[string]string{"region": "northeast", "tier": "gold"}
	cases := []struct {
		name string
		sel  Selector
		dev  InventoryDevice
		want bool
	}{
		{"empty matches all", Selector{}, dev("a", "", "", nil), true},
		{"empty matches non-semver", Selector{}, dev("a", "offline", "banana", nil), true},

		{"ids any of", Selector{IDs: []string{"a", "b"}}, dev("b", "", "", nil), true},
		{"ids not listed", Selector{IDs: []string{"a", "b"}}, dev("c", "", "", nil), false},

		{"tags all equal", Selector{Tags: map[string]string{"region": "northeast", "tier": "gold"}}, dev("a", "", "", ne), true},
		{"tags subset of metadata", Selector{Tags: map[string]string{"region": "northeast"}}, dev("a", "", "", ne), true},
		{"tags one differs", Selector{Tags: map[string]string{"region": "northeast", "tier": "silver"}}, dev("a", "", "", ne), false},
		{"tags key missing", Selector{Tags: map[string]string{"store": "NYC-001"}}, dev("a", "", "", ne), false},
		{"tags empty value vs missing key", Selector{Tags: map[string]string{"store": ""}}, dev("a", "", "", ne), false},
		{"tags device without metadata", Selector{Tags: map[string]string{"region": "northeast"}}, dev("a", "", "", nil), false},

		{"status any of", Selector{Status: []string{"online", "degraded"}}, dev("a", "degraded", "", nil), true},
		{"status not listed", Selector{Status: []string{"online"}}, dev("a", "offline", "", nil), false},
		{"status empty on device", Selector{Status: []string{"online"}}, dev("a", "", "", nil), false},

		{"below: lower patch", Selector{VersionBelow: "2.4.0"}, dev("a", "", "2.3.9", nil), true},
		{"below: equal", Selector{VersionBelow: "2.4.0"}, dev("a", "", "2.4.0", nil), false},
		{"below: higher", Selector{VersionBelow: "2.4.0"}, dev("a", "", "2.4.1", nil), false},
		{"below: pre-release is lower than its release", Selector{VersionBelow: "2.4.0"}, dev("a", "", "2.4.0-rc.1", nil), true},
		{"below: release is not lower than its pre-release", Selector{VersionBelow: "2.4.0-rc.1"}, dev("a", "", "2.4.0", nil), false},
		{"below: rc.2 < rc.10", Selector{VersionBelow: "2.4.0-rc.10"}, dev("a", "", "2.4.0-rc.2", nil), true},
		{"below: numeric not lexical (2.10 > 2.9)", Selector{VersionBelow: "2.9.0"}, dev("a", "", "2.10.0", nil), false},
		{"below: numeric not lexical (2.9 < 2.10)", Selector{VersionBelow: "2.10.0"}, dev("a", "", "2.9.0", nil), true},
		{"below: v prefix on device", Selector{VersionBelow: "2.4.0"}, dev("a", "", "v2.3.0", nil), true},
		{"below: v prefix in selector", Selector{VersionBelow: "v2.4.0"}, dev("a", "", "2.3.0", nil), true},
		{"below: build metadata ignored", Selector{VersionBelow: "2.4.0"}, dev("a", "", "2.4.0+build.5", nil), false},
		{"below: non-semver device not selected", Selector{VersionBelow: "9.9.9"}, dev("a", "", "banana", nil), false},
		{"below: four-part device version not selected", Selector{VersionBelow: "9.9.9"}, dev("a", "", "2.4.0.1", nil), false},
		{"below: unknown device version not selected", Selector{VersionBelow: "9.9.9"}, dev("a", "", "", nil), false},
		{"below: leading zero is not semver", Selector{VersionBelow: "9.9.9"}, dev("a", "", "02.4.0", nil), false},

		{"all set fields must match", Selector{IDs: []string{"a"}, Tags: map[string]string{"region": "northeast"},
			Status: []string{"online"}, VersionBelow: "2.4.0"}, dev("a", "online", "2.3.1", ne), true},
		{"all set fields: one fails", Selector{IDs: []string{"a"}, Tags: map[string]string{"region": "northeast"},
			Status: []string{"online"}, VersionBelow: "2.4.0"}, dev("a", "offline", "2.3.1", ne), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.sel.Matches(tc.dev))
		})
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"1.9.9", "2.4.0-alpha", "2.4.0-alpha.1", "2.4.0-beta", "2.4.0-rc.1", "2.4.0-rc.2", "2.4.0-rc.10", "2.4.0", "2.4.1", "2.9.0", "2.10.0", "10.0.0"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			assert.Equal(t, want, CompareVersions(ordered[i], ordered[j]), "%s vs %s", ordered[i], ordered[j])
		}
	}
	assert.Equal(t, 0, CompareVersions("v2.4.0", "2.4.0"))
}

func TestIsSemver(t *testing.T) {
	for _, v := range []string{"2.4.0", "v2.4.0", "2.4.0-rc.1", "v2.4.0-rc.1", "1.0.0+meta", "0.0.1"} {
		assert.True(t, IsSemver(v), v)
	}
	for _, v := range []string{"", "v", "banana", "2.4.0.1", "02.4.0", "2.4.0-", "vv2.4.0", "2.4.0 "} {
		assert.False(t, IsSemver(v), v)
	}
}

func TestOrderKeyFormatAndStability(t *testing.T) {
	k := OrderKey("fw-2.4.0", "pos-nyc-001")
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}/pos-nyc-001$`), k)
	assert.Equal(t, k, OrderKey("fw-2.4.0", "pos-nyc-001"), "the same on every call, worker and run")
	assert.NotEqual(t, k, OrderKey("fw-2.4.1", "pos-nyc-001"), "each rollout has its own order")
	// the separator keeps ("a", "bc") and ("ab", "c") apart
	assert.NotEqual(t, OrderKey("a", "bc")[:16], OrderKey("ab", "c")[:16])
	// a golden value: changing the order breaks rollouts already running
	// (sha256("fw\x00dev-000"), first 8 bytes in hex)
	assert.Equal(t, "950ffd903941e842/dev-000", OrderKey("fw", "dev-000"))
}

// Any prefix of the order (a canary) is spread over the whole fleet, not
// the first devices of the inventory, and differs between rollouts.
func TestOrderKeySpreads(t *testing.T) {
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("pos-%04d", i)
	}
	canary := func(rollout string) []string {
		sorted := slices.Clone(ids)
		sort.Slice(sorted, func(i, j int) bool { return OrderKey(rollout, sorted[i]) < OrderKey(rollout, sorted[j]) })
		return sorted[:n/10]
	}
	first := canary("fw-2.4.0")

	deciles := map[int]int{}
	for _, id := range first {
		var i int
		_, _ = fmt.Sscanf(id, "pos-%04d", &i)
		deciles[i/100]++
	}
	assert.Len(t, deciles, 10, "the first 10%% comes from every tenth of the inventory: %v", deciles)
	for d, c := range deciles {
		assert.Less(t, c, 30, "decile %d over-represented", d)
	}

	second := canary("fw-2.5.0")
	common := 0
	for _, id := range second {
		if slices.Contains(first, id) {
			common++
		}
	}
	assert.Less(t, common, 30, "two rollouts pick different canaries")

	keys := map[string]bool{}
	for _, id := range ids {
		keys[OrderKey("fw-2.4.0", id)] = true
	}
	assert.Len(t, keys, n, "keys are unique")
}
