package workflows

import (
	"path"
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
// match: ids (any of), tags (all equal), hasTags (all present), status
// (any of), versionBelow / versionAtLeast (semantic versions; a device
// whose version is not one does not match), location (glob).
func (s Selector) Matches(d InventoryDevice) bool {
	if len(s.IDs) > 0 && !slices.Contains(s.IDs, d.ID) {
		return false
	}
	for k, v := range s.Tags {
		if got, ok := d.Metadata[k]; !ok || got != v {
			return false
		}
	}
	for _, k := range s.HasTags {
		if _, ok := d.Metadata[k]; !ok {
			return false
		}
	}
	if len(s.Status) > 0 && !slices.Contains(s.Status, d.Status) {
		return false
	}
	if s.VersionBelow != "" && !(IsSemver(d.FirmwareVersion) && CompareVersions(d.FirmwareVersion, s.VersionBelow) < 0) {
		return false
	}
	if s.VersionAtLeast != "" && !(IsSemver(d.FirmwareVersion) && CompareVersions(d.FirmwareVersion, s.VersionAtLeast) >= 0) {
		return false
	}
	if s.Location != "" && !matchLocation(s.Location, d.Location) {
		return false
	}
	return true
}

// matchLocation matches a location against a glob, ignoring case.
// path.Match's '*' and '?' do not match '/', which means nothing in a
// location ("*, JFK" must match "Terminal 2/Gate B, JFK"), so the slashes
// of both are swapped for a Unicode noncharacter, never in a location.
func matchLocation(pattern, location string) bool {
	ok, _ := path.Match(hideSlashes.Replace(strings.ToLower(pattern)), hideSlashes.Replace(strings.ToLower(location)))
	return ok
}

var hideSlashes = strings.NewReplacer("/", "\uFDD0")

// empty: the selector selects every device.
func (s Selector) empty() bool {
	return len(s.IDs) == 0 && len(s.Tags) == 0 && len(s.HasTags) == 0 && len(s.Status) == 0 &&
		s.VersionBelow == "" && s.VersionAtLeast == "" && s.Location == ""
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
