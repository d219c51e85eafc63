package workflows

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"time"
)

var (
	// Rollout IDs become workflow IDs and prefix child IDs ("<id>/<device>"),
	// so they must not contain a slash.
	rolloutIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	versionPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$`)
	sha256Pattern    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// FieldError names the spec field that is wrong and why, in one line.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate reports the first problem with the spec, naming the field.
func (s Spec) Validate() error {
	if s.ID == "" {
		return fieldErr("id", "is required")
	}
	if !rolloutIDPattern.MatchString(s.ID) {
		return fieldErr("id", "%q must be 1-128 letters, digits, '.', '_', ':' or '-' and start with a letter or digit", s.ID)
	}
	if s.ID+"/" == presencePrefix {
		// Its device updates would take the presence workflows' IDs.
		return fieldErr("id", "%q is reserved for the devices' presence workflows", s.ID)
	}
	if err := s.Firmware.validate("firmware"); err != nil {
		return err
	}
	if s.RollbackOf == "" {
		if err := validateSource("inventory", s.Inventory); err != nil {
			return err
		}
	} else if err := s.validateRollbackOf(); err != nil {
		return err
	}
	if err := s.Selector.validate(); err != nil {
		return err
	}
	if s.MaxConcurrent < 0 || s.MaxConcurrent > MaxMaxConcurrent {
		return fieldErr("maxConcurrent", "must be between 1 and %d, got %d", MaxMaxConcurrent, s.MaxConcurrent)
	}
	if s.MaxHistoryEvents != 0 && (s.MaxHistoryEvents < MinMaxHistoryEvents || s.MaxHistoryEvents > MaxMaxHistoryEvents) {
		return fieldErr("maxHistoryEvents", "must be between %d and %d, got %d", MinMaxHistoryEvents, MaxMaxHistoryEvents, s.MaxHistoryEvents)
	}
	if err := s.Device.validate(); err != nil {
		return err
	}
	return s.validatePolicies()
}

// validate checks a firmware description; field names start with prefix
// ("firmware", "rollback.firmware").
func (f Firmware) validate(prefix string) error {
	if f.Version == "" {
		return fieldErr(prefix+".version", "is required")
	}
	if !versionPattern.MatchString(f.Version) {
		return fieldErr(prefix+".version", "%q must be 1-64 letters, digits, '.', '_', '+', '~' or '-'", f.Version)
	}
	if f.URL == "" {
		return fieldErr(prefix+".url", "is required")
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return fieldErr(prefix+".url", "%q is not a URL: %v", f.URL, err)
	}
	switch u.Scheme {
	case "file":
		if !filepath.IsAbs(u.Path) {
			return fieldErr(prefix+".url", "%q must be an absolute file:///path", f.URL)
		}
	case "http", "https":
		if u.Host == "" {
			return fieldErr(prefix+".url", "%q has no host", f.URL)
		}
	default:
		return fieldErr(prefix+".url", "%q must be a file://, http:// or https:// URL", f.URL)
	}
	if f.SHA256 == "" {
		return fieldErr(prefix+".sha256", "is required")
	}
	if !sha256Pattern.MatchString(f.SHA256) {
		return fieldErr(prefix+".sha256", "must be 64 hex digits, got %d characters", len(f.SHA256))
	}
	if f.Size < 0 {
		return fieldErr(prefix+".size", "must not be negative, got %d", f.Size)
	}
	return validateSignature(prefix+".signature", f.Signature)
}

// validateSignature checks the form of a firmware signature; whether it
// verifies is for the workers, which hold the public keys.
func validateSignature(field, b64 string) error {
	if b64 == "" {
		return nil
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return fieldErr(field, "is not base64 (standard encoding): %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return fieldErr(field, "must be a %d-byte ed25519 signature, got %d bytes", ed25519.SignatureSize, len(sig))
	}
	return nil
}

// validateSource accepts a path, a file:// URL or an http(s):// URL.
func validateSource(field, src string) error {
	if src == "" {
		return fieldErr(field, "is required")
	}
	u, err := url.Parse(src)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // "C:" is a drive, not a scheme
		return nil
	}
	switch u.Scheme {
	case "file":
		if !filepath.IsAbs(u.Path) {
			return fieldErr(field, "%q must be an absolute file:///path", src)
		}
	case "http", "https":
		if u.Host == "" {
			return fieldErr(field, "%q has no host", src)
		}
	default:
		return fieldErr(field, "%q must be a path, a file:// URL or an http(s):// URL", src)
	}
	return nil
}

func (s Selector) validate() error {
	for i, id := range s.IDs {
		if id == "" {
			return fieldErr(fmt.Sprintf("selector.ids[%d]", i), "is empty")
		}
	}
	if _, ok := s.Tags[""]; ok {
		return fieldErr("selector.tags", "has an empty key")
	}
	for i, st := range s.Status {
		if st == "" {
			return fieldErr(fmt.Sprintf("selector.status[%d]", i), "is empty")
		}
	}
	for i, k := range s.HasTags {
		if k == "" {
			return fieldErr(fmt.Sprintf("selector.hasTags[%d]", i), "is empty")
		}
	}
	if s.VersionBelow != "" && !IsSemver(s.VersionBelow) {
		return fieldErr("selector.versionBelow", "%q is not a semantic version (like 2.4.0 or 2.4.0-rc.1)", s.VersionBelow)
	}
	if s.VersionAtLeast != "" && !IsSemver(s.VersionAtLeast) {
		return fieldErr("selector.versionAtLeast", "%q is not a semantic version (like 2.4.0 or 2.4.0-rc.1)", s.VersionAtLeast)
	}
	if s.VersionBelow != "" && s.VersionAtLeast != "" && CompareVersions(s.VersionAtLeast, s.VersionBelow) >= 0 {
		return fieldErr("selector.versionAtLeast", "%s is not below versionBelow %s: no version can match", s.VersionAtLeast, s.VersionBelow)
	}
	if _, err := path.Match(s.Location, ""); err != nil {
		return fieldErr("selector.location", "%q is not a valid pattern: %v", s.Location, err)
	}
	return nil
}

func (p DevicePolicy) validate() error {
	durations := []struct {
		field, value string
	}{
		{"device.pushTimeout", p.PushTimeout},
		{"device.waitOnline", p.WaitOnline},
		{"device.verifyTimeout", p.VerifyTimeout},
		{"device.heartbeatTimeout", p.HeartbeatTimeout},
		{"device.retry.initialInterval", p.Retry.InitialInterval},
		{"device.retry.maximumInterval", p.Retry.MaximumInterval},
	}
	for _, d := range durations {
		if err := validatePositiveDuration(d.field, d.value); err != nil {
			return err
		}
	}
	if p.Retry.BackoffCoefficient != 0 && p.Retry.BackoffCoefficient < 1 {
		return fieldErr("device.retry.backoffCoefficient", "must be at least 1, got %g", p.Retry.BackoffCoefficient)
	}
	if p.Retry.MaximumAttempts < 0 {
		return fieldErr("device.retry.maximumAttempts", "must be at least 1, got %d", p.Retry.MaximumAttempts)
	}
	t := p.Timing()
	if t.MaximumInterval < t.InitialInterval {
		return fieldErr("device.retry.maximumInterval", "%s is shorter than initialInterval %s", t.MaximumInterval, t.InitialInterval)
	}
	return nil
}

func validatePositiveDuration(field, value string) error {
	if value == "" {
		return nil
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return fieldErr(field, "%q is not a duration (like 90s or 10m)", value)
	}
	if d <= 0 {
		return fieldErr(field, "must be positive, got %s", value)
	}
	return nil
}
