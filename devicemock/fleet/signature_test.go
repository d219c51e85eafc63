package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// With --require-signature alone a device needs the header but cannot
// check it: unsigned uploads get 403, any signature is taken.
func TestRequireSignatureRefusesUnsignedUploads(t *testing.T) {
	f, srv := startFleet(t, Config{Devices: 2, Version: "1.0.0", RequireSignature: true})
	img := image(4096)

	r := upload{device: "dev-00001", version: "2.0.0", body: img}.mustSend(t, srv)
	wantCode(t, "unsigned upload", r, http.StatusForbidden)
	if !strings.Contains(r.body["error"], "X-Firmware-Signature is required") {
		t.Errorf("403 says %q, want it to name X-Firmware-Signature", r.body["error"])
	}
	if st := deviceStats(t, f, "dev-00001"); st.Installs != 0 || st.Bytes != 0 {
		t.Errorf("unsigned upload: %+v, want no install and no body read", st)
	}

	r = upload{device: "dev-00002", version: "2.0.0", body: img, signature: "anything"}.mustSend(t, srv)
	wantCode(t, "signed upload", r, http.StatusAccepted)
}

// With public keys a device checks the signature over the image it
// received: only an image signed for its version and bytes installs.
func TestFirmwareKeysVerifyTheReceivedImage(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	img := image(64 << 10)
	good := signing.Sign(priv, "2.0.0", checksum(img))

	for _, tc := range []struct {
		name      string
		signature string
		code      int
		message   string
	}{
		{"signed", good, http.StatusAccepted, ""},
		{"missing", "", http.StatusForbidden, "X-Firmware-Signature is required"},
		{"not base64", "not base64!", http.StatusBadRequest, "X-Firmware-Signature, when checked, is a base64 ed25519 signature"},
		{"other key", signing.Sign(otherPriv, "2.0.0", checksum(img)), http.StatusUnprocessableEntity, "firmware signature does not verify"},
		{"other version", signing.Sign(priv, "2.0.1", checksum(img)), http.StatusUnprocessableEntity, "firmware signature does not verify"},
		{"other image", signing.Sign(priv, "2.0.0", checksum(image(100))), http.StatusUnprocessableEntity, "firmware signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := startFleet(t, Config{Devices: 1, Version: "1.0.0", FirmwareKeys: signing.Keys{pub}})
			r := upload{device: "dev-00001", version: "2.0.0", body: img, signature: tc.signature}.mustSend(t, srv)
			wantCode(t, tc.name, r, tc.code)
			if tc.code == http.StatusAccepted {
				if v := waitForVersion(t, srv, "dev-00001"); v != "2.0.0" {
					t.Fatalf("version %s after a signed upload, want 2.0.0", v)
				}
				return
			}
			if !strings.Contains(r.body["error"], tc.message) {
				t.Errorf("answer %q, want it to contain %q", r.body["error"], tc.message)
			}
			if st := deviceStats(t, f, "dev-00001"); st.Installs != 0 || st.Version != "1.0.0" {
				t.Errorf("refused upload left %+v, want no install", st)
			}
		})
	}
}

// A resumed upload is checked over the whole image, the prefix the device
// kept included.
func TestFirmwareKeysVerifyResumedUploads(t *testing.T) {
	pub, priv := newKey(t)
	img := image(64 << 10)
	f, err := New(Config{Devices: 2, Version: "1.0.0", Reboot: 1, FirmwareKeys: signing.Keys{pub}})
	if err != nil {
		t.Fatal(err)
	}
	good := signing.Sign(priv, "2.0.0", checksum(img))
	wrong := signing.Sign(priv, "2.0.0", checksum(image(10)))

	for device, second := range map[string]string{"dev-00001": good, "dev-00002": wrong} {
		cut := piece{device: device, img: img, to: 1000, signed: good}.send(f)
		if cut.Code != http.StatusBadRequest {
			t.Fatalf("%s: cut upload answered %d, want 400", device, cut.Code)
		}
		rest := piece{device: device, img: img, from: 1000, to: len(img), signed: second}.send(f)
		want := http.StatusAccepted
		if second == wrong {
			want = http.StatusUnprocessableEntity
		}
		if rest.Code != want {
			t.Errorf("%s: resumed upload answered %d %s, want %d", device, rest.Code, rest.Body, want)
		}
	}
}
