package activities

import (
	"errors"
	"fmt"
	"io"
)

// tooLargeError is a response (or file) longer than we read of it.
type tooLargeError struct {
	what  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than the %s limit", e.what, byteSize(e.limit))
}

// capped reads r up to limit bytes; past that it fails with a
// *tooLargeError naming what and the limit, so that a truncated read
// is never mistaken for a malformed one.
func capped(r io.Reader, limit int64, what string) io.Reader {
	return &cappedReader{r: r, left: limit, err: &tooLargeError{what: what, limit: limit}}
}

type cappedReader struct {
	r    io.Reader
	left int64 // bytes still allowed; -1 once past the limit
	err  *tooLargeError
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.err
	}
	// One byte past the limit tells a body of exactly limit bytes from a
	// longer one.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n - 1, c.err
	}
	return n, err
}

// tooLargeDetail is " (what is larger than the limit)" when err says so,
// else "": for failure messages about an answer that did not parse.
func tooLargeDetail(err error) string {
	if tooLarge, ok := errors.AsType[*tooLargeError](err); ok {
		return " (" + tooLarge.Error() + ")"
	}
	return ""
}

// byteSize writes a limit the way its constant reads: 64 KiB, 256 MiB.
func byteSize(n int64) string {
	for _, unit := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= unit.size && n%unit.size == 0 {
			return fmt.Sprintf("%d %s", n/unit.size, unit.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
