package workflows

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode"
)

// FuzzVersions: IsSemver and CompareVersions take any string without
// panicking; on semantic versions the order is a total order (reflexive,
// antisymmetric, transitive, "v" prefix ignored); versionBelow and
// versionAtLeast in Selector.Matches agree with it and split every
// semantic version between them; Validate accepts exactly the selectors
// whose versions parse and leave some version to match.
func FuzzVersions(f *testing.F) {
	for _, s := range [][3]string{
		{"2.4.0", "2.4.0-rc.1", "2.10.0"},
		{"v2.4.0", "2.4.0", "2.4.0+build.5"},
		{"2.4.0-rc.2", "2.4.0-rc.10", "2.4.0-alpha"},
		{"1.0.0-alpha.beta", "1.0.0-alpha.1", "1.0.0-0.3.7"},
		{"2", "2.4", "v2.4.1"},
		{"banana", "", "v"},
		{"02.4.0", "2.4.0.1", "2.4.0-"},
		{"1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "99999999999999999999.0.0"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		semA, semB, semC := IsSemver(a), IsSemver(b), IsSemver(c)
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab < -1 || ab > 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d, want -1, 0 or 1", a, b, ab)
		}
		if !semA || !semB {
			fuzzCheckVersionBoundRefused(t, a, b, semA, semB)
			return
		}
		if ab != -ba {
			t.Fatalf("not antisymmetric: CompareVersions(%q, %q) = %d, CompareVersions(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) != 0", a)
		}
		if !strings.HasPrefix(a, "v") && CompareVersions("v"+a, a) != 0 {
			t.Fatalf("%q and v%s compare differently", a, a)
		}
		if semC {
			bc, ac := CompareVersions(b, c), CompareVersions(a, c)
			if ab <= 0 && bc <= 0 && ac > 0 {
				t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
			}
			if ab == 0 && bc != ac {
				t.Fatalf("%q == %q but they compare differently with %q (%d, %d)", a, b, c, ac, bc)
			}
		}

		// A device on version a, selectors bounded by b.
		dev := InventoryDevice{ID: "d", FirmwareVersion: a}
		below := Selector{VersionBelow: b}.Matches(dev)
		atLeast := Selector{VersionAtLeast: b}.Matches(dev)
		if below != (ab < 0) || atLeast != (ab >= 0) {
			t.Fatalf("device %q: versionBelow %q matches=%v, versionAtLeast matches=%v; CompareVersions = %d", a, b, below, atLeast, ab)
		}
		if below == atLeast {
			t.Fatalf("device %q: versionBelow and versionAtLeast %q must split the versions, both %v", a, b, below)
		}
		for _, s := range []Selector{{VersionBelow: b}, {VersionAtLeast: b}} {
			if err := s.validate(); err != nil {
				t.Fatalf("selector %+v with a semantic version is refused: %v", s, err)
			}
		}
		// versionAtLeast a, versionBelow b: valid iff a < b; then a
		// device on a matches, one on b does not.
		s := Selector{VersionAtLeast: a, VersionBelow: b}
		err := s.validate()
		if (err == nil) != (ab < 0) {
			t.Fatalf("selector %+v: validate() = %v, but CompareVersions = %d", s, err, ab)
		}
		if err == nil {
			if !s.Matches(InventoryDevice{FirmwareVersion: a}) || s.Matches(InventoryDevice{FirmwareVersion: b}) {
				t.Fatalf("selector %+v: must match %q and not %q", s, a, b)
			}
		} else {
			fuzzRequireField(t, err, "selector.versionAtLeast")
		}
	})
}

// fuzzCheckVersionBoundRefused: a selector bound that is not a semantic
// version is refused by name, and a device whose version is not one is
// never matched by a version bound.
func fuzzCheckVersionBoundRefused(t *testing.T, a, b string, semA, semB bool) {
	t.Helper()
	if b != "" && !semB {
		fuzzRequireField(t, Selector{VersionBelow: b}.validate(), "selector.versionBelow")
		fuzzRequireField(t, Selector{VersionAtLeast: b}.validate(), "selector.versionAtLeast")
	}
	if !semA && semB {
		dev := InventoryDevice{ID: "d", FirmwareVersion: a}
		if (Selector{VersionBelow: b}).Matches(dev) || (Selector{VersionAtLeast: b}).Matches(dev) {
			t.Fatalf("device on non-semver %q is matched by a version bound %q", a, b)
		}
	}
}

func fuzzRequireField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("want an error naming %s, got %v", field, err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error is not one line: %q", err.Error())
	}
}

// FuzzSelectorLocation: the location glob never panics; a pattern that
// Validate accepts never errors when matched; matching ignores ASCII
// case; a pattern without glob characters matches exactly its text; "*"
// followed by a plain suffix matches every location ending with it.
func FuzzSelectorLocation(f *testing.F) {
	for _, s := range [][2]string{
		{"*, NY", "New York, NY"},
		{"*, ny", "Brooklyn, NY"},
		{"New York, NY", "new york, ny"},
		{"[a-c]*", "Boston, MA"},
		{"[^a-c]?", "x1"},
		{`\*`, "*"},
		{"[", "["},
		{`ab\`, `ab\`},
		{"*", ""},
		{"Store 12 ?", "store 12 b"},
		{"*, NY", "Lobby/Entrance, NY"},
		{"ÄÖ*", "äöü"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, location string) {
		sel := Selector{Location: pattern}
		dev := InventoryDevice{ID: "d", Location: location}
		err := sel.validate()
		got := sel.Matches(dev) // must not panic, valid or not
		if err != nil {
			fuzzRequireField(t, err, "selector.location")
			return
		}
		if pattern == "" {
			if !got {
				t.Fatalf("an empty location pattern must match everything, not %q", location)
			}
			return
		}
		if _, mErr := path.Match(strings.ToLower(pattern), strings.ToLower(location)); mErr != nil {
			t.Fatalf("pattern %q passes Validate but fails matching %q: %v", pattern, location, mErr)
		}
		if fuzzIsASCII(pattern) && fuzzIsASCII(location) {
			for _, p := range []string{strings.ToUpper(pattern), strings.ToLower(pattern)} {
				for _, l := range []string{strings.ToUpper(location), strings.ToLower(location)} {
					if m := (Selector{Location: p}).Matches(InventoryDevice{Location: l}); m != got {
						t.Fatalf("case matters: %q vs %q matched %v, %q vs %q matched %v", pattern, location, got, p, l, m)
					}
				}
			}
		}
		// Matches lower-cases both sides (not strings.EqualFold, which
		// folds some letters differently), so these do too.
		lowPattern, lowLocation := strings.ToLower(pattern), strings.ToLower(location)
		if !strings.ContainsAny(pattern, `*?[\`) && got != (lowPattern == lowLocation) {
			t.Fatalf("plain pattern %q vs %q: matched %v", pattern, location, got)
		}
		if suffix, ok := strings.CutPrefix(lowPattern, "*"); ok && !strings.ContainsAny(suffix, `*?[\`) {
			if want := strings.HasSuffix(lowLocation, suffix); got != want {
				t.Fatalf("pattern %q vs %q: matched %v, want %v", pattern, location, got, want)
			}
		}
	})
}

func fuzzIsASCII(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII {
			return false
		}
	}
	return true
}
