// Package fleet simulates a fleet of firmware-updatable devices speaking the
// device HTTP protocol, with seeded fault injection. It holds tens of
// thousands of devices in one process: state changes are computed lazily
// when a device is next accessed, never by a goroutine or timer per device.
package fleet

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

// Fleet is a running simulation. Its methods and handler are safe for
// concurrent use.
type Fleet struct {
	token     string
	reboot    time.Duration
	latency   time.Duration
	bandwidth int64
	maxImage  int64 // largest image an upload may carry, resumed part included
	// uploadStall bounds how long one read of an upload body may wait for
	// bytes: a client that stops sending does not hold its device forever.
	uploadStall time.Duration
	resumable   bool // devices keep partial uploads and answer HEAD /update
	signed      bool // uploads must carry X-Firmware-Signature
	keys        signing.Keys
	clock       clock
	onlineAt    time.Time // offline devices answer from then on; zero: never

	devices []*device // sorted by id, the order of faults, stats and inventory
	byID    map[string]*device
}

// New validates cfg and builds its fleet. Errors are one line and name the
// devicemock flag at fault.
func New(cfg Config) (*Fleet, error) {
	return newFleet(cfg, realClock{})
}

func newFleet(cfg Config, clk clock) (*Fleet, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var records []Device
	if cfg.Inventory != nil {
		// Sorting first makes fault assignment independent of file order.
		records = slices.SortedFunc(slices.Values(cfg.Inventory), func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	} else {
		records = generateInventory(cfg.Devices, cfg.Version)
	}
	faults := assignFaults(len(records), cfg.Seed, cfg.faultShares())
	f := &Fleet{
		token:       cfg.Token,
		reboot:      cfg.Reboot,
		latency:     cfg.Latency,
		bandwidth:   cfg.Bandwidth,
		maxImage:    cmp.Or(cfg.MaxImage, DefaultMaxImage),
		uploadStall: defaultUploadStall,
		resumable:   !cfg.NoResume,
		signed:      cfg.RequireSignature || len(cfg.FirmwareKeys) > 0,
		keys:        cfg.FirmwareKeys,
		clock:       clk,
		devices:     make([]*device, len(records)),
		byID:        make(map[string]*device, len(records)),
	}
	if cfg.OnlineAfter > 0 {
		f.onlineAt = clk.Now().Add(cfg.OnlineAfter)
	}
	for i, rec := range records {
		d := newDevice(rec, faults[i])
		f.devices[i] = d
		f.byID[d.id] = d
	}
	return f, nil
}

func newDevice(rec Device, fault Fault) *device {
	// A device the registry lists as offline behaves offline whatever fault
	// the seed gave it, and stats say so.
	if rec.Status == statusOffline {
		fault = FaultOffline
	}
	status := rec.Status
	if status == "" {
		status = statusOnline
	}
	if fault == FaultOffline {
		status = statusOffline
	}
	d := &device{
		id:       rec.ID,
		name:     rec.Name,
		location: rec.Location,
		status:   status,
		metadata: maps.Clone(rec.Metadata),
		fault:    fault,
		version:  rec.FirmwareVersion,
	}
	if fault == FaultFail5xx {
		d.refusals5xx = fail5xxRefusals
	}
	return d
}

// generatedRegions are handed out round-robin to generated devices.
var generatedRegions = []string{"northeast", "southeast", "central", "west"}

// generateInventory makes n online devices dev-00001... on version; one in
// ten (dev-00001, dev-00011, ...) is in ring "a", the rest in ring "b".
func generateInventory(n int, version string) []Device {
	width := max(5, len(strconv.Itoa(n)))
	devices := make([]Device, n)
	for i := range devices {
		number := i + 1
		ring := "b"
		if i%10 == 0 {
			ring = "a"
		}
		devices[i] = Device{
			ID:              fmt.Sprintf("dev-%0*d", width, number),
			Name:            "Device " + strconv.Itoa(number),
			Status:          statusOnline,
			FirmwareVersion: version,
			Location:        "Lab",
			Metadata: map[string]string{
				"region": generatedRegions[i%len(generatedRegions)],
				"ring":   ring,
			},
		}
	}
	return devices
}

// Len is the number of simulated devices.
func (f *Fleet) Len() int { return len(f.devices) }
