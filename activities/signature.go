package activities

import (
	"fmt"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// signatureHeader carries firmware.signature to the device, which may
// check it too.
const signatureHeader = "X-Firmware-Signature"

// signatureCheck is what a signed push holds the streamed image to: its
// digest, with the version it is pushed as, must be signed by one of the
// worker's keys.
type signatureCheck struct {
	keys    signing.Keys
	version string
	sig     []byte
}

// signatureCheck applies the worker's policy to the image before any
// device is touched. A worker with public keys pushes only signed images;
// one without refuses a signed image rather than push it unchecked, which
// would defeat the signature. An unsigned image to a worker without keys
// is pushed as before, and gets a nil check.
func (a *Activities) signatureCheck(fw workflows.Firmware) (*signatureCheck, error) {
	switch {
	case fw.Signature == "" && len(a.FirmwareKeys) == 0:
		return nil, nil
	case fw.Signature == "":
		return nil, permanent(workflows.ErrSignatureInvalid,
			"push: firmware.signature is missing, and this worker pushes only signed firmware (it has --firmware-public-key)")
	case len(a.FirmwareKeys) == 0:
		return nil, permanent(workflows.ErrSignatureInvalid,
			"push: cannot verify firmware.signature: worker has no --firmware-public-key")
	}
	sig, err := signing.DecodeSignature(fw.Signature)
	if err != nil {
		return nil, permanent(workflows.ErrSignatureInvalid, "push: firmware.signature "+err.Error())
	}
	return &signatureCheck{keys: a.FirmwareKeys, version: fw.Version, sig: sig}, nil
}

// refusal says why an image with this digest fails the check, or "" when
// it passes; a nil check passes everything.
func (c *signatureCheck) refusal(sha256Hex string) string {
	if c == nil || c.keys.Verify(c.version, sha256Hex, c.sig) {
		return ""
	}
	return fmt.Sprintf("firmware signature does not verify: none of the worker's %d public keys signed version %s with sha256 %s",
		len(c.keys), c.version, sha256Hex)
}
