package fleet

import (
	"sync"
	"sync/atomic"
	"time"
)

// device is the live state of one simulated device. There is no goroutine or
// timer per device: an install is a deadline, settled whenever the device is
// next looked at, so an idle fleet of any size costs only memory.
type device struct {
	id       string
	name     string
	location string
	status   string // as the registry lists it: online, offline, unknown...
	metadata map[string]string
	fault    Fault // FaultOffline also for devices listed offline in --fleet

	uploads atomic.Int64 // POST /update requests received
	bytes   atomic.Int64 // upload body bytes read

	mu           sync.Mutex
	version      string         // running firmware
	nextVersion  string         // firmware running once readyAt passes
	readyAt      time.Time      // end of the current install+reboot; zero when idle
	installs     int64          // completed installs
	refusals5xx  int            // 503s a fail-5xx device still owes
	wasBusy      bool           // a fail-429 device has answered its one 429
	droppedFirst bool           // a drop device has already cut its one upload
	partial      *partialUpload // what an upload that ended early left; nil when none
	receiving    int            // uploads whose body is being read
}

// settleLocked finishes an install whose reboot is over.
func (d *device) settleLocked(now time.Time) {
	if !d.readyAt.IsZero() && !now.Before(d.readyAt) {
		d.version, d.nextVersion, d.readyAt = d.nextVersion, "", time.Time{}
		d.installs++
	}
}

// state reports the running version and whether the device is installing or
// rebooting at now.
func (d *device) state(now time.Time) (version string, installing bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleLocked(now)
	return d.version, !d.readyAt.IsZero()
}

// verdict is how a device answers an upload before reading its body.
type verdict int

const (
	receiveBody verdict = iota
	refuseInstalling
	refuseReceiving
	refuseHeaders
	refuseUnsigned
	refuseForbidden
	refuseUnavailable
	refuseBusy
	alreadyInstalled
	conflictingOffset
	dropMidStream
)

// admit decides, in the order the protocol fixes, how an upload is answered;
// it also uses up a fail-5xx refusal or a drop device's one cut. With the
// verdict comes the partial the upload continues (zero for a fresh start),
// or, for a conflicting offset, the partial the device holds instead.
func (d *device) admit(now time.Time, up uploadHeaders, headersOK bool) (verdict, partialUpload) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleLocked(now)
	held := d.heldLocked(up.checksum, up.version)
	from := held
	if up.offset == 0 {
		from = partialUpload{} // no Upload-Offset (or 0): start over
	}
	switch {
	case !d.readyAt.IsZero():
		return refuseInstalling, partialUpload{}
	case d.receiving > 0:
		// One upload at a time: the body of a client that gave up may still
		// be arriving from the socket buffers, and it may yet install.
		return refuseReceiving, partialUpload{}
	case !headersOK:
		return refuseHeaders, partialUpload{}
	case up.unsigned:
		return refuseUnsigned, partialUpload{}
	case d.fault == FaultFail4xx:
		return refuseForbidden, partialUpload{}
	case d.fault == FaultFail5xx && d.refusals5xx > 0:
		d.refusals5xx--
		return refuseUnavailable, partialUpload{}
	case d.fault == FaultBusy && !d.wasBusy:
		d.wasBusy = true
		return refuseBusy, partialUpload{}
	case up.version == d.version:
		return alreadyInstalled, partialUpload{}
	case up.offset != from.offset:
		return conflictingOffset, held
	case d.fault == FaultDrop && !d.droppedFirst:
		d.droppedFirst = true
		d.receiving++
		return dropMidStream, from
	}
	d.receiving++
	return receiveBody, from
}

// receivingNow says whether an upload's body is being read.
func (d *device) receivingNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.receiving > 0
}

// endReceiving ends an upload admitted to receiveBody or dropMidStream.
func (d *device) endReceiving() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.receiving--
}

// beginInstall starts installing version until now+reboot. It reports false
// when a concurrent upload to the same device started an install first.
func (d *device) beginInstall(now time.Time, version string, reboot time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleLocked(now)
	if !d.readyAt.IsZero() {
		return false
	}
	d.nextVersion = version
	if d.fault == FaultWrongVersion {
		d.nextVersion = d.version
	}
	d.readyAt = now.Add(reboot)
	return true
}
