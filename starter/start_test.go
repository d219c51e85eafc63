package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bad input exits 2 with one line naming what is wrong, before any
// connection to Temporal is attempted (the address below has no server).
func TestStartRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "fw.bin")
	require.NoError(t, os.WriteFile(image, []byte("firmware"), 0o644))
	inventory := filepath.Join(dir, "inventory.json")
	require.NoError(t, os.WriteFile(inventory, []byte(`[{"id":"pos-1","address":"http://127.0.0.1:1/devices/pos-1","status":"online","firmware_version":"1.0.0","metadata":{"region":"west"}}]`), 0o644))
	malformed := filepath.Join(dir, "malformed.json")
	require.NoError(t, os.WriteFile(malformed, []byte(`{"id":`), 0o644))
	badSpec := filepath.Join(dir, "spec.json")
	require.NoError(t, os.WriteFile(badSpec, []byte(`{"id":"x","maxConcurent":5}`), 0o644))

	ok := []string{"--id", "r1", "--inventory", inventory, "--firmware", image, "--version", "2.0.0"}
	with := func(extra ...string) []string { return append(append([]string{}, ok...), extra...) }
	without := func(flag string) []string {
		var args []string
		for i := 0; i < len(ok); i += 2 {
			if ok[i] != flag {
				args = append(args, ok[i], ok[i+1])
			}
		}
		return args
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", with("--bogus"), "unknown flag --bogus for start (see: starter start --help)"},
		{"missing id", without("--id"), "--id is required"},
		{"missing firmware file", with("--firmware", filepath.Join(dir, "nope.bin")), "--firmware: firmware image " + filepath.Join(dir, "nope.bin") + " is not readable"},
		{"short sha256", with("--sha256", "abc123"), `--sha256 must be 64 hex digits, got "abc123" (6 characters)`},
		{"wrong sha256", with("--sha256", strings.Repeat("ab", 32)), "--sha256 abababab"},
		{"unreadable inventory", with("--inventory", filepath.Join(dir, "none.json")), "--inventory: inventory file://" + filepath.Join(dir, "none.json") + " is not readable: no such file or directory"},
		{"malformed inventory", with("--inventory", malformed), "is not a JSON array of devices"},
		{"empty selection", with("--tag", "region=north"), "the selector matched none of the 1 devices"},
		{"zero max concurrent", with("--max-concurrent", "0"), "--max-concurrent must be between 1 and 1000, got 0"},
		{"bad tag", with("--tag", "region"), `--tag "region" must be key=value`},
		{"bad versionBelow", with("--version-below", "two"), `selector.versionBelow: "two" is not a semantic version`},
		{"bad rollout id", with("--id", "a/b"), `id: "a/b" must be 1-128 letters`},
		{"misspelt spec field", []string{"start", "--spec", badSpec}, `unknown field "maxConcurent"`},
		{"stray argument", with("extra"), `start takes no arguments, got ["extra"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] != "start" {
				args = append([]string{"start"}, args...)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"starter", "--address", "127.0.0.1:1"}, args...), &stdout, &stderr)
			assert.Equal(t, 2, code)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			assert.Len(t, lines, 1, stderr.String())
			assert.Contains(t, lines[0], tc.want)
			assert.True(t, strings.HasPrefix(lines[0], "starter: "), lines[0])
			assert.Empty(t, stdout.String())
		})
	}
}

// --dry-run shows the selection and starts nothing.
func TestStartDryRun(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "fw.bin")
	require.NoError(t, os.WriteFile(image, []byte("firmware"), 0o644))
	inventory := filepath.Join(dir, "inventory.json")
	require.NoError(t, os.WriteFile(inventory, []byte(`[
		{"id":"pos-1","address":"http://h/devices/pos-1","status":"online","firmware_version":"1.0.0","metadata":{"region":"west"}},
		{"id":"pos-2","address":"http://h/devices/pos-2","status":"offline","firmware_version":"1.0.0","metadata":{"region":"west"}},
		{"id":"pos-3","address":"http://h/devices/pos-3","status":"online","firmware_version":"2.1.0","metadata":{"region":"east"}}]`), 0o644))

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"starter", "--address", "127.0.0.1:1", "start", "--id", "r1",
		"--inventory", inventory, "--firmware", image, "--version", "2.0.0", "--status", "online", "--version-below", "2.0.0", "--dry-run"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), "selected   1 of 3 devices")
	assert.Contains(t, stdout.String(), "pos-1  http://h/devices/pos-1")
	assert.NotContains(t, stdout.String(), "pos-3")
	// sha256 of "firmware", computed from the file.
	assert.Contains(t, stdout.String(), "sha256 c3bf47ea1f4a4a605470313cacb3a44f4a461f68c6faeab07e737610cb5ac835  8 bytes")
}

// Flags may follow the rollout ID, as PRODUCT.md writes `status ID --json`.
func TestFlagsFirst(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	assert.Equal(t,
		[]string{"starter", "--address", "h:1", "status", "--json", "r1"},
		flagsFirst([]string{"starter", "--address", "h:1", "status", "r1", "--json"}, app))
	assert.Equal(t,
		[]string{"starter", "cancel", "--force", "r1"},
		flagsFirst([]string{"starter", "cancel", "r1", "--force"}, app))
	assert.Equal(t,
		[]string{"starter", "start", "--id", "x", "--wait"},
		flagsFirst([]string{"starter", "start", "--id", "x", "--wait"}, app))
}
