package workflows

import (
	"slices"
	"strings"

	"golang.org/x/mod/semver"
)

// InventoryDevice is one record of the fleet registry (the inventory file).
type InventoryDevice struct {
	ID              string            `json:"id"`
	Name            string            `json:"name,omitempty"`
	Address         string            `json:"address"`
	Status          string            `json:"status,omitempty"`
	FirmwareVersion string            `json:"firmware_version,omitempty"`
	Location        string            `json:"location,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// Matches reports whether the device is selected. Every set field must
// match: ids (any of), tags (all equal), status (any of), versionBelow
// (the device runs a semantic version strictly lower).
func (s Selector) Matches(d InventoryDevice) bool {
	if len(s.IDs) > 0 && !slices.Contains(s.IDs, d.ID) {
		return false
	}
	for k, v := range s.Tags {
		if got, ok := d.Metadata[k]; !ok || got != v {
			return false
		}
	}
	if len(s.Status) > 0 && !slices.Contains(s.Status, d.Status) {
		return false
	}
	if s.VersionBelow != "" {
		if !IsSemver(d.FirmwareVersion) || CompareVersions(d.FirmwareVersion, s.VersionBelow) >= 0 {
			return false
		}
	}
	return true
}

// IsSemver reports whether v is a semantic version, with or without the
// leading "v" ("2.4.0", "v2.4.0-rc.1").
func IsSemver(v string) bool { return semver.IsValid(canonicalSemver(v)) }

// CompareVersions orders semantic versions, pre-releases before releases
// ("2.4.0-rc.1" < "2.4.0"). Both must satisfy IsSemver.
func CompareVersions(a, b string) int {
	return semver.Compare(canonicalSemver(a), canonicalSemver(b))
}

func canonicalSemver(v string) string {
	if strings.HasPrefix(v, "v") {
		return v
	}
	return "v" + v
}
