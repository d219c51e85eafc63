package fleet

// Stats is what GET /_fleet/stats returns.
type Stats struct {
	Devices []DeviceStats `json:"devices"` // sorted by id
	Totals  Totals        `json:"totals"`
}

// DeviceStats counts one device's traffic and installs.
type DeviceStats struct {
	ID       string `json:"id"`
	Version  string `json:"version"`  // running firmware
	Installs int64  `json:"installs"` // completed installs (reboot over)
	Uploads  int64  `json:"uploads"`  // POST /update requests received
	Bytes    int64  `json:"bytes"`    // upload body bytes read
	Fault    Fault  `json:"fault,omitempty"`
}

// Totals sums DeviceStats over the fleet.
type Totals struct {
	Devices  int   `json:"devices"`
	Installs int64 `json:"installs"`
	Uploads  int64 `json:"uploads"`
	Bytes    int64 `json:"bytes"`
}

// Stats snapshots every device, settling installs whose reboot is over.
func (f *Fleet) Stats() Stats {
	now := f.clock.Now()
	stats := Stats{Devices: make([]DeviceStats, len(f.devices))}
	for i, d := range f.devices {
		d.mu.Lock()
		d.settleLocked(now)
		s := DeviceStats{
			ID:       d.id,
			Version:  d.version,
			Installs: d.installs,
			Uploads:  d.uploads.Load(),
			Bytes:    d.bytes.Load(),
			Fault:    d.fault,
		}
		d.mu.Unlock()
		stats.Devices[i] = s
		stats.Totals.Installs += s.Installs
		stats.Totals.Uploads += s.Uploads
		stats.Totals.Bytes += s.Bytes
	}
	stats.Totals.Devices = len(f.devices)
	return stats
}
