package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// buildSpec reads --spec (if any) and lays the flags over it. Paths become
// absolute file:// URLs, since workers resolve them, not this process.
func buildSpec(c *cli.Context) (workflows.Spec, error) {
	var spec workflows.Spec
	if path := c.String("spec"); path != "" {
		var err error
		if spec, err = readSpecFile(path); err != nil {
			return spec, err
		}
	}
	if c.IsSet("id") {
		spec.ID = c.String("id")
	}
	if c.IsSet("inventory") {
		spec.Inventory = c.String("inventory")
	}
	if c.IsSet("firmware") {
		spec.Firmware.URL = c.String("firmware")
	}
	if c.IsSet("version") {
		spec.Firmware.Version = c.String("version")
	}
	if c.IsSet("sha256") {
		spec.Firmware.SHA256 = c.String("sha256")
	}
	if c.IsSet("max-concurrent") {
		n := c.Int("max-concurrent")
		if n < 1 || n > workflows.MaxMaxConcurrent {
			return spec, fmt.Errorf("--max-concurrent must be between 1 and %d, got %d", workflows.MaxMaxConcurrent, n)
		}
		spec.MaxConcurrent = n
	}
	if err := applySelectorFlags(c, &spec.Selector); err != nil {
		return spec, err
	}

	required := []struct {
		flag  string
		value string
	}{
		{"--id", spec.ID}, {"--inventory", spec.Inventory},
		{"--firmware", spec.Firmware.URL}, {"--version", spec.Firmware.Version},
	}
	for _, r := range required {
		if r.value == "" {
			return spec, fmt.Errorf("%s is required (or set it in --spec)", r.flag)
		}
	}
	if sha := spec.Firmware.SHA256; sha != "" && !isHex64(sha) {
		return spec, fmt.Errorf("--sha256 must be 64 hex digits, got %q (%d characters)", sha, len(sha))
	}
	var err error
	if spec.Inventory, err = absoluteSource(spec.Inventory); err != nil {
		return spec, fmt.Errorf("--inventory: %v", err)
	}
	if err := resolveFirmware(c.Context, &spec.Firmware); err != nil {
		return spec, err
	}
	if err := signFirmware(c, &spec.Firmware); err != nil {
		return spec, err
	}
	if err := spec.Validate(); err != nil {
		return spec, err
	}
	return spec, checkSignature(c, spec.Firmware)
}

func applySelectorFlags(c *cli.Context, sel *workflows.Selector) error {
	for _, kv := range c.StringSlice("tag") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--tag %q must be key=value", kv)
		}
		if sel.Tags == nil {
			sel.Tags = map[string]string{}
		}
		sel.Tags[k] = v
	}
	if c.IsSet("device") {
		sel.IDs = c.StringSlice("device")
	}
	if c.IsSet("status") {
		sel.Status = c.StringSlice("status")
	}
	if c.IsSet("has-tag") {
		sel.HasTags = c.StringSlice("has-tag")
	}
	if c.IsSet("version-below") {
		sel.VersionBelow = c.String("version-below")
	}
	if c.IsSet("version-at-least") {
		sel.VersionAtLeast = c.String("version-at-least")
	}
	if c.IsSet("location") {
		sel.Location = c.String("location")
	}
	return nil
}

// readSpecFile decodes a spec strictly: a misspelt field is an error, not
// a silently ignored setting.
func readSpecFile(path string) (workflows.Spec, error) {
	var spec workflows.Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return spec, fmt.Errorf("--spec: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("--spec %s: %v", path, err)
	}
	return spec, nil
}

// absoluteSource turns a relative path into an absolute file:// URL and
// leaves URLs alone.
func absoluteSource(src string) (string, error) {
	if u, err := url.Parse(src); err == nil && len(u.Scheme) > 1 {
		return src, nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: abs}).String(), nil
}

// resolveFirmware makes the firmware URL absolute and fills in the SHA-256
// and size by reading the image when they are not given. A given SHA-256
// that does not match a local file is refused here, before anything starts.
func resolveFirmware(ctx context.Context, fw *workflows.Firmware) error {
	var err error
	if fw.URL, err = absoluteSource(fw.URL); err != nil {
		return fmt.Errorf("--firmware: %v", err)
	}
	u, err := url.Parse(fw.URL)
	if err != nil {
		return fmt.Errorf("--firmware: %v", err)
	}
	if u.Scheme != "file" && fw.SHA256 != "" {
		return nil // a remote image with a known digest: the workers check it
	}
	body, err := openFirmware(ctx, u)
	if err != nil {
		return fmt.Errorf("--firmware: %v", err)
	}
	defer func() { _ = body.Close() }()
	h := sha256.New()
	size, err := io.Copy(h, body)
	if err != nil {
		return fmt.Errorf("--firmware: reading %s: %v", fw.URL, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if fw.SHA256 != "" && !strings.EqualFold(fw.SHA256, sum) {
		return fmt.Errorf("--sha256 %s does not match the firmware image, whose sha256 is %s", fw.SHA256, sum)
	}
	if fw.Size != 0 && fw.Size != size {
		return fmt.Errorf("firmware.size %d does not match the firmware image, which has %d bytes", fw.Size, size)
	}
	fw.SHA256, fw.Size = sum, size
	return nil
}

func openFirmware(ctx context.Context, u *url.URL) (io.ReadCloser, error) {
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("firmware image %s is not readable: %v", u.Path, err)
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			_ = f.Close()
			return nil, fmt.Errorf("firmware image %s is a directory", u.Path)
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("fetching %s to compute its sha256: %s", u, resp.Status)
	}
	return resp.Body, nil
}

func isHex64(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 64 && err == nil
}
