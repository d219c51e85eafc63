package fleet

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultMaxImage is the largest image an upload may carry unless
// --max-image says otherwise: 4 GiB, above any device image we know.
const DefaultMaxImage = 4 << 30

// maxRequestBody bounds the body of every request but an upload: none of
// them takes one.
const maxRequestBody = 4 << 10

// defaultUploadStall is how long one read of an upload body may wait for
// a byte. The whole upload has no time limit: a bandwidth cap, ours or the
// network's, makes a large image take hours, and that is legitimate.
const defaultUploadStall = time.Minute

// noBody serves h with the request body capped at maxRequestBody; a body
// declared larger gets 413 before h runs.
func noBody(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxRequestBody {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request bodies are limited to %d bytes", maxRequestBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		h(w, r)
	}
}

// imageTooLarge answers 413 when an upload declares more bytes than the
// device takes, counting the part it resumes from offset.
func (f *Fleet) imageTooLarge(w http.ResponseWriter, r *http.Request, offset int64) bool {
	if r.ContentLength <= f.maxImage-offset {
		return false
	}
	f.refuseTooLarge(w)
	return true
}

func (f *Fleet) refuseTooLarge(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, f.tooLarge())
}

func (f *Fleet) tooLarge() string {
	return fmt.Sprintf("image larger than the %d bytes this device takes", f.maxImage)
}

// overImageLimit says whether a body read failed because it went past the
// device's image limit.
func overImageLimit(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// stallDeadline gives each read of an upload body uploadStall to get a
// byte, on the connection itself: a client that stops sending is cut off
// instead of holding its device's upload open.
type stallDeadline struct {
	r     io.Reader
	rc    *http.ResponseController
	stall time.Duration
}

func (s stallDeadline) Read(p []byte) (int, error) {
	// Servers that cannot set deadlines (test recorders) read without one.
	_ = s.rc.SetReadDeadline(time.Now().Add(s.stall))
	return s.r.Read(p)
}
