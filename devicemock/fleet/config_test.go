package fleet

import (
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	valid := Config{Devices: 10, Version: "1.0.0"}
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"no devices":         {func(c *Config) { c.Devices = 0 }, "--devices must be at least 1 (got 0)"},
		"no version":         {func(c *Config) { c.Version = "" }, "--version must not be empty"},
		"negative reboot":    {func(c *Config) { c.Reboot = -time.Second }, "--reboot must not be negative"},
		"negative latency":   {func(c *Config) { c.Latency = -1 }, "--latency must not be negative"},
		"negative bandwidth": {func(c *Config) { c.Bandwidth = -1 }, "--bandwidth must not be negative"},
		"fail-5xx above 1":   {func(c *Config) { c.Fail5xx = 1.5 }, "--fail-5xx must be between 0 and 1 (got 1.5)"},
		"fail-4xx negative":  {func(c *Config) { c.Fail4xx = -0.1 }, "--fail-4xx must be between 0 and 1"},
		"offline above 1":    {func(c *Config) { c.Offline = 2 }, "--offline must be between 0 and 1"},
		"drop negative":      {func(c *Config) { c.Drop = -1 }, "--drop must be between 0 and 1"},
		"wrong-version NaN":  {func(c *Config) { c.WrongVersion = nan() }, "--wrong-version must be between 0 and 1"},
		"shares above 1":     {func(c *Config) { c.Fail4xx, c.Drop = 0.6, 0.5 }, "must add up to at most 1 (got 1.1)"},
		"empty inventory":    {func(c *Config) { c.Inventory = []Device{} }, "--fleet: no devices"},
		"duplicate ids":      {func(c *Config) { c.Inventory = []Device{{ID: "a"}, {ID: "a"}} }, `--fleet: device #2: duplicate id "a"`},
	} {
		cfg := valid
		tc.change(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestNewAcceptsEdgeConfigs(t *testing.T) {
	for name, cfg := range map[string]Config{
		"shares summing to exactly 1 in floats": {Devices: 10, Version: "1", Fail4xx: 0.1, Fail5xx: 0.2, WrongVersion: 0.7},
		"every device faulty":                   {Devices: 1, Version: "1", Drop: 1},
		"inventory ignores devices and version": {Inventory: []Device{{ID: "a"}}},
	} {
		if _, err := New(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
