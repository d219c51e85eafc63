package activities_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func newSigningKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

// signed is im's firmware signed by key for version.
func (im image) signed(url string, key ed25519.PrivateKey, version string) workflows.Firmware {
	fw := im.firmware(url)
	fw.Signature = signing.Sign(key, version, im.sha256)
	return fw
}

// A signed image goes to a device that checks the signature itself: the
// device gets X-Firmware-Signature and installs it once.
func TestPushFirmwareSignedImage(t *testing.T) {
	t.Parallel()
	pub, priv := newSigningKey(t)
	im := newImage(t, 60, 1<<20+3)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{Reboot: 10 * time.Millisecond, FirmwareKeys: signing.Keys{pub}})

	res := newHarness(t, withKeys(pub)).mustPush(pushRequest(deviceURL(srv, firstDevice), im.signed(url, priv, targetVersion)))
	require.Equal(t, im.size, res.BytesSent)
	eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
	require.Equal(t, targetVersion, deviceStats(t, f, firstDevice).Version)
}

// The signature travels on uploads and on offset probes, like the other
// image headers.
func TestPushFirmwareSendsTheSignature(t *testing.T) {
	t.Parallel()
	pub, priv := newSigningKey(t)
	im := newImage(t, 61, 4<<10)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, func(d *fakeDevice) { d.headFn = offsetAnswer("0") })
	fw := im.signed(url, priv, targetVersion)

	newHarness(t, withKeys(pub), withAttempt(2)).mustPush(pushRequest(dev.address(), fw))
	require.Len(t, dev.offsetProbes(), 1)
	require.Equal(t, fw.Signature, dev.offsetProbes()[0].Get("X-Firmware-Signature"))
	require.Len(t, dev.recorded(), 1)
	require.Equal(t, fw.Signature, dev.recorded()[0].header.Get("X-Firmware-Signature"))
}

// An image that does not verify is refused before its last byte leaves:
// the device sees an incomplete upload and installs nothing, and the
// failure is permanent.
func TestPushFirmwareBadSignature(t *testing.T) {
	t.Parallel()
	pub, priv := newSigningKey(t)
	_, otherKey := newSigningKey(t)
	im := newImage(t, 62, 2<<20+9)
	other := newImage(t, 63, 1000)
	_, url := writeImage(t, im)

	for _, tc := range []struct {
		name string
		fw   workflows.Firmware
	}{
		{"signature of another image", func() workflows.Firmware {
			fw := im.firmware(url)
			fw.Signature = signing.Sign(priv, targetVersion, other.sha256)
			return fw
		}()},
		{"another key", im.signed(url, otherKey, targetVersion)},
		{"another version", im.signed(url, priv, "1.9.0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The devices require a signature but cannot check it: the
			// worker's check is all that stands between them and the image.
			f, srv := startFleet(t, fleet.Config{Reboot: 10 * time.Millisecond, RequireSignature: true})
			_, err := newHarness(t, withKeys(pub)).push(pushRequest(deviceURL(srv, firstDevice), tc.fw))
			requirePermanent(t, err, workflows.ErrSignatureInvalid,
				"push: firmware signature does not verify", "version "+targetVersion, "sha256 "+im.sha256)
			time.Sleep(50 * time.Millisecond) // past any reboot, had there been an install
			st := deviceStats(t, f, firstDevice)
			require.EqualValues(t, 1, st.Uploads)
			require.Less(t, st.Bytes, im.size, "the device never got the whole image")
			require.Zero(t, st.Installs)
			require.Equal(t, oldVersion, st.Version)
		})
	}
}

// The worker's policy: with keys it pushes only signed images, without
// keys it refuses a signature it cannot check. Either way no device is
// touched.
func TestPushFirmwareSignaturePolicy(t *testing.T) {
	t.Parallel()
	pub, priv := newSigningKey(t)
	im := newImage(t, 64, 4<<10)
	_, url := writeImage(t, im)

	for _, tc := range []struct {
		name string
		h    func(t *testing.T) *harness
		fw   workflows.Firmware
		want string
	}{
		{"unsigned to a worker with keys", func(t *testing.T) *harness { return newHarness(t, withKeys(pub)) }, im.firmware(url),
			"push: firmware.signature is missing, and this worker pushes only signed firmware (it has --firmware-public-key)"},
		{"signed to a worker without keys", func(t *testing.T) *harness { return newHarness(t) }, im.signed(url, priv, targetVersion),
			"push: cannot verify firmware.signature: worker has no --firmware-public-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newFakeDevice(t, nil)
			_, err := tc.h(t).push(pushRequest(dev.address(), tc.fw))
			requirePermanent(t, err, workflows.ErrSignatureInvalid, tc.want)
			require.Empty(t, dev.probes(), "refused before asking the device anything")
			require.Empty(t, dev.recorded())
		})
	}
}

// A retry resumes a signed upload: the prefix the device holds is hashed,
// not sent, and the signature is checked over the whole image, by the
// worker and by the device. A prefix that changed on the worker since is
// caught all the same.
func TestPushFirmwareResumedSignedUpload(t *testing.T) {
	t.Parallel()
	pub, priv := newSigningKey(t)
	im := newImage(t, 65, 3<<20+17)

	for _, tc := range []struct {
		name     string
		tamperAt int64 // flip a byte of the worker's image before the retry; -1: none
	}{{"intact", -1}, {"prefix changed since", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, url := writeImage(t, im)
			f, srv := startFleet(t, fleet.Config{Drop: 1, Reboot: 50 * time.Millisecond, FirmwareKeys: signing.Keys{pub}})
			req := pushRequest(deviceURL(srv, firstDevice), im.signed(url, priv, targetVersion))
			h := newHarness(t, withKeys(pub))
			_, err := h.push(req)
			requireTransient(t, err, "push", "(attempt 1)")
			half := im.size / 2
			require.Equal(t, half, deviceStats(t, f, firstDevice).Bytes, "the drop device kept half the image")
			if tc.tamperAt >= 0 {
				flipByte(t, path, tc.tamperAt)
			}

			res, err := newHarness(t, withKeys(pub), withAttempt(2), withDetails(lastBeat(t, h))).push(req)
			if tc.tamperAt >= 0 {
				requirePermanent(t, err, workflows.ErrSignatureInvalid, "push: firmware signature does not verify")
				time.Sleep(100 * time.Millisecond) // past any reboot, had there been an install
				st := deviceStats(t, f, firstDevice)
				require.Less(t, st.Bytes, im.size, "the rest never arrived whole")
				require.Zero(t, st.Installs)
				return
			}
			require.NoError(t, err)
			require.Equal(t, im.size-half, res.BytesSent, "only the rest was sent")
			eventually(t, 3*time.Second, func() bool { return deviceStats(t, f, firstDevice).Installs == 1 }, "installed after reboot")
			st := deviceStats(t, f, firstDevice)
			require.Equal(t, im.size, st.Bytes, "no byte sent twice")
			require.EqualValues(t, 2, st.Uploads)
			require.Equal(t, targetVersion, st.Version)
		})
	}
}
