package fleet

import (
	"fmt"
	"math"
	"time"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

// Config describes the simulated fleet. Field comments name the devicemock
// flag each field comes from, because validation errors use those names.
type Config struct {
	Devices int    // --devices: how many devices to generate (ignored with Inventory)
	Version string // --version: firmware every generated device starts on
	Seed    int64  // --seed: picks which devices get which fault
	Token   string // --token: when set, uploads need "Authorization: Bearer <Token>"

	Reboot    time.Duration // --reboot: install+reboot time after an accepted upload
	Latency   time.Duration // --latency: delay before every device request is answered
	Bandwidth int64         // --bandwidth: bytes per second per upload, 0 = unlimited

	// MaxImage (--max-image) is the largest image an upload may carry,
	// resumed part included; larger ones get 413. 0 is DefaultMaxImage.
	MaxImage int64

	// NoResume (--no-resume) makes every device one that predates resumable
	// uploads: HEAD /update answers 405, Upload-Offset is ignored and an
	// upload that ends early leaves nothing behind.
	NoResume bool

	// OnlineAfter (--online-after), when set, brings offline devices back
	// this long after the fleet starts; 0 keeps them offline.
	OnlineAfter time.Duration

	// RequireSignature (--require-signature) refuses uploads without
	// X-Firmware-Signature with 403.
	RequireSignature bool
	// FirmwareKeys (--firmware-public-key), when set, are the keys the
	// signature must verify with over the received image (422 otherwise);
	// they imply RequireSignature.
	FirmwareKeys signing.Keys

	// Shares (0..1, summing to at most 1) of devices given each fault.
	Fail5xx, Fail4xx, Offline, Drop, WrongVersion float64
	Busy                                          float64 // --fail-429

	// Inventory (--fleet), when set, is simulated instead of Devices/Version.
	Inventory []Device
}

// faultShare ties a fault to its flag and its share of the fleet.
type faultShare struct {
	fault Fault
	flag  string
	rate  float64
}

// faultShares lists the faults in the order they take their slice of the
// shuffled fleet; changing the order changes which device gets which fault.
func (c Config) faultShares() []faultShare {
	return []faultShare{
		{FaultFail4xx, "--fail-4xx", c.Fail4xx},
		{FaultFail5xx, "--fail-5xx", c.Fail5xx},
		{FaultOffline, "--offline", c.Offline},
		{FaultDrop, "--drop", c.Drop},
		{FaultWrongVersion, "--wrong-version", c.WrongVersion},
		{FaultBusy, "--fail-429", c.Busy}, // last: adding it moves no other fault
	}
}

func (c Config) validate() error {
	if c.Inventory == nil {
		if c.Devices < 1 {
			return fmt.Errorf("--devices must be at least 1 (got %d)", c.Devices)
		}
		if c.Version == "" {
			return fmt.Errorf("--version must not be empty")
		}
	} else if err := validateInventory(c.Inventory); err != nil {
		return fmt.Errorf("--fleet: %w", err)
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"--reboot", c.Reboot}, {"--latency", c.Latency}} {
		if d.value < 0 {
			return fmt.Errorf("%s must not be negative (got %s)", d.flag, d.value)
		}
	}
	if c.Bandwidth < 0 {
		return fmt.Errorf("--bandwidth must not be negative (got %d)", c.Bandwidth)
	}
	if c.MaxImage < 0 {
		return fmt.Errorf("--max-image must not be negative (got %d)", c.MaxImage)
	}
	sum := 0.0
	for _, s := range c.faultShares() {
		if math.IsNaN(s.rate) || s.rate < 0 || s.rate > 1 {
			return fmt.Errorf("%s must be between 0 and 1 (got %g)", s.flag, s.rate)
		}
		sum += s.rate
	}
	// The tolerance forgives float rounding in sums like 0.1+0.2+0.7.
	if sum > 1+1e-9 {
		return fmt.Errorf("--fail-4xx, --fail-5xx, --offline, --drop and --wrong-version must add up to at most 1 (got %g)", sum)
	}
	return nil
}
