package fleet

import (
	"math"
	"math/rand/v2"
)

// Fault names the misbehaviour injected into a device.
type Fault string

// The injected faults; a device without one has the zero Fault "".
const (
	FaultFail4xx      Fault = "fail-4xx"      // refuses every upload with 403
	FaultFail5xx      Fault = "fail-5xx"      // answers 503 to its first two uploads
	FaultOffline      Fault = "offline"       // never answers
	FaultDrop         Fault = "drop"          // cuts its first upload mid-stream
	FaultWrongVersion Fault = "wrong-version" // reboots into its previous version
	FaultBusy         Fault = "fail-429"      // answers its first upload 429 with Retry-After
)

// busyRetryAfter is the Retry-After a fail-429 device asks for, in seconds.
const busyRetryAfter = 2

// fail5xxRefusals is how many uploads a fail-5xx device refuses before working.
const fail5xxRefusals = 2

// assignFaults shuffles the n device indices once with seed and hands each
// fault, in order, the next round(rate*n) of them, so the slices are disjoint
// and the same seed and shares always pick the same devices.
func assignFaults(n int, seed int64, shares []faultShare) []Fault {
	faults := make([]Fault, n)
	order := rand.New(rand.NewPCG(uint64(seed), 0)).Perm(n)
	next := 0
	for _, s := range shares {
		// Rounding each share up can overshoot n when the shares sum to 1.
		count := min(int(math.Round(s.rate*float64(n))), n-next)
		for _, i := range order[next : next+count] {
			faults[i] = s.fault
		}
		next += count
	}
	return faults
}
