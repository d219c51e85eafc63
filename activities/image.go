package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// openImage opens the firmware at its URL for streaming and tells its
// size (-1 when unknown). A missing image is a permanent failure; a
// firmware server that is down is transient.
func (a *Activities) openImage(ctx context.Context, fw workflows.Firmware) (io.ReadCloser, int64, error) {
	u, err := url.Parse(fw.URL)
	if err != nil {
		return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware url: "+err.Error())
	}
	var body io.ReadCloser
	size := int64(-1)
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware image not readable on this worker: "+err.Error())
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		body = f
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fw.URL, nil)
		if err != nil {
			return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware url: "+err.Error())
		}
		resp, err := followingRedirects(a.sources()).Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			if why := tlsFailure("the firmware server", err); why != "" {
				return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware "+fw.URL+": "+why)
			}
			if errors.Is(err, errRedirectRefused) {
				return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware url: "+err.Error())
			}
			return nil, 0, transient(ctx, "firmware server unreachable: "+err.Error(), 0)
		}
		if resp.StatusCode != http.StatusOK {
			defer drainAndClose(resp.Body)
			what := fmt.Sprintf("firmware server answered %s for %s", resp.Status, fw.URL)
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
				return nil, 0, transient(ctx, what, retryAfter(resp.Header.Get("Retry-After")))
			}
			return nil, 0, permanent(workflows.ErrFirmwareSource, what)
		}
		body, size = resp.Body, resp.ContentLength
	default:
		return nil, 0, permanent(workflows.ErrFirmwareSource, "firmware url scheme "+u.Scheme+" is not supported")
	}
	if fw.Size > 0 && size >= 0 && size != fw.Size {
		_ = body.Close()
		return nil, 0, permanent(workflows.ErrChecksumMismatch,
			fmt.Sprintf("firmware image is %d bytes, the spec says %d", size, fw.Size))
	}
	if size < 0 && fw.Size > 0 {
		size = fw.Size
	}
	return body, size, nil
}

// errImageMismatch marks an image whose bytes are not the ones the spec
// names; the upload is aborted before the device receives its last byte.
var errImageMismatch = errors.New("firmware image does not match the spec")

// digestReader streams the image, hashing and counting as it goes. It
// checks the digest, and the signature of a signed push, before handing
// over the last chunk (when the size is known; else before the end of the
// body), so a wrong image never reaches a device whole. For a resumed
// upload it is primed with the prefix the device already holds: hashed,
// so the digest still covers the whole image, but not sent.
type digestReader struct {
	src    io.Reader
	hash   hash.Hash
	want   string
	size   int64
	signed *signatureCheck // nil for an unsigned push
	primed atomic.Int64    // bytes of the prefix hashed but not sent
	sent   atomic.Int64
	done   atomic.Bool                  // the whole image was read and matched the spec
	failed atomic.Pointer[imageRefusal] // why the image was refused
	broken atomic.Value                 // string: why reading the image failed
}

// imageRefusal is why the image was refused, and the error type that
// reports it.
type imageRefusal struct {
	errType string
	why     string
}

func newDigestReader(src io.Reader, wantHex string, size int64) *digestReader {
	return &digestReader{src: src, hash: sha256.New(), want: strings.ToLower(wantHex), size: size}
}

// prime hashes the first n bytes of the image without sending them. It
// must come before the first Read.
func (r *digestReader) prime(n int64) error {
	if _, err := io.CopyN(prefixHasher{r}, r.src, n); err != nil {
		if err == io.EOF {
			return r.refuse(fmt.Sprintf("firmware image ended after %d of its %d bytes", r.primed.Load(), r.size))
		}
		r.broken.Store(err.Error())
		return err
	}
	return nil
}

// prefixHasher takes the primed prefix into the hash, counting it as it
// goes so that a long priming shows progress, not a stall.
type prefixHasher struct{ r *digestReader }

func (p prefixHasher) Write(b []byte) (int, error) {
	p.r.hash.Write(b)
	p.r.primed.Add(int64(len(b)))
	return len(b), nil
}

// consumed is how much of the image has been read, primed or sent.
func (r *digestReader) consumed() int64 { return r.primed.Load() + r.sent.Load() }

func (r *digestReader) Read(p []byte) (int, error) {
	n, err := r.src.Read(p)
	if err != nil && err != io.EOF {
		r.broken.Store(err.Error())
	}
	r.hash.Write(p[:n])
	sent := r.sent.Load() + int64(n)
	total := r.primed.Load() + sent
	if r.size >= 0 && total > r.size {
		return 0, r.refuse(fmt.Sprintf("firmware image is longer than its %d bytes", r.size))
	}
	lastChunk := err == io.EOF || (r.size >= 0 && total == r.size)
	if lastChunk {
		if err == nil { // the size says this is the end: make sure the source agrees
			var extra [1]byte
			if m, _ := io.ReadFull(r.src, extra[:]); m > 0 {
				return 0, r.refuse(fmt.Sprintf("firmware image is longer than its %d bytes", r.size))
			}
		}
		if r.size >= 0 && total < r.size {
			return 0, r.refuse(fmt.Sprintf("firmware image ended after %d of its %d bytes", total, r.size))
		}
		got := hex.EncodeToString(r.hash.Sum(nil))
		// The signature first: an image that is not the signed one is worse
		// news than a typo in the spec's digest.
		if why := r.signed.refusal(got); why != "" {
			return 0, r.refuseAs(workflows.ErrSignatureInvalid, why)
		}
		if got != r.want {
			return 0, r.refuse(fmt.Sprintf("firmware image has sha256 %s, the spec says %s", got, r.want))
		}
	}
	r.sent.Store(sent)
	if lastChunk {
		r.done.Store(true)
	}
	if lastChunk && err == nil {
		err = io.EOF
	}
	return n, err
}

func (r *digestReader) refuse(why string) error {
	return r.refuseAs(workflows.ErrChecksumMismatch, why)
}

func (r *digestReader) refuseAs(errType, why string) error {
	r.failed.Store(&imageRefusal{errType: errType, why: why})
	return fmt.Errorf("%w: %s", errImageMismatch, why)
}

// refused says why the image was refused, or nil when it was not.
func (r *digestReader) refused() *imageRefusal { return r.failed.Load() }

// sourceFailed says why reading the image itself failed (a firmware
// server that went away mid-stream, an unreadable file), or "".
func (r *digestReader) sourceFailed() string {
	why, _ := r.broken.Load().(string)
	return why
}
