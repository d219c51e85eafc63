package activities_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// A /version answer past the 64 KiB read limit is a bad answer that says
// so, not a hang or a truncated parse.
func TestHugeVersionAnswer(t *testing.T) {
	t.Parallel()
	im := newImage(t, 80, 1<<10)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.versionFn = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"version":"`)
			_, _ = io.WriteString(w, strings.Repeat("9", 4<<20))
			_, _ = io.WriteString(w, `"}`)
		}
	})
	_, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
	requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "probe: device answered /version without", "larger than the 64 KiB limit")
	require.Empty(t, dev.recorded(), "no upload after a bad probe")
}

// A 200 to an upload whose body passes the limit is a bad answer naming it.
func TestHugeUploadAnswer(t *testing.T) {
	t.Parallel()
	im := newImage(t, 81, 1<<10)
	_, url := writeImage(t, im)
	dev := newFakeDevice(t, func(d *fakeDevice) {
		d.updateFn = func(w http.ResponseWriter, _ *http.Request, body *countingBody) {
			_, _ = io.Copy(io.Discard, body)
			_, _ = io.WriteString(w, `{"status":"`+strings.Repeat("a", 1<<20)+`"}`)
		}
	})
	_, err := newHarness(t).push(pushRequest(dev.address(), im.firmware(url)))
	requirePermanent(t, err, workflows.ErrBadDeviceAnswer, "push: device answered 200", "larger than the 64 KiB limit")
}

func TestInventoryLimit(t *testing.T) {
	t.Parallel()
	client := activities.NewHTTPClient(nil)
	ctx := context.Background()
	var inventoryErr *activities.InventoryError

	t.Run("declared larger than 256 MiB", func(t *testing.T) {
		t.Parallel()
		var sent atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(300<<20))
			n, _ := io.Copy(w, strings.NewReader("["+strings.Repeat(" ", 1<<20)))
			sent.Store(n)
		}))
		t.Cleanup(srv.Close)
		_, err := activities.LoadInventory(ctx, client, srv.URL+"/inventory.json")
		require.True(t, errors.As(err, &inventoryErr), "want an InventoryError, got %v", err)
		require.ErrorContains(t, err, "is 314572800 bytes, larger than the 256 MiB limit")
		require.LessOrEqual(t, sent.Load(), int64(1<<20+1), "refused on the header, before the body")
	})

	// Streamed without a length, over a lowered limit: cut there.
	body := `[{"id":"a","address":"http://10.0.0.1"},` + strings.Repeat(`{"id":"b","address":"http://10.0.0.2"},`, 100)
	body = body[:len(body)-1] + "]"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length: chunked
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "inventory.json")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	for name, src := range map[string]string{"streamed": srv.URL + "/inventory.json", "file": path} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := activities.LoadInventoryWithin(ctx, client, src, 1<<10)
			require.True(t, errors.As(err, &inventoryErr), "want an InventoryError, got %v", err)
			require.EqualError(t, err, "inventory "+src+" is larger than the 1 KiB limit")

			// At its own size it loads (and trips on the duplicate id).
			_, err = activities.LoadInventoryWithin(ctx, client, src, int64(len(body)))
			require.ErrorContains(t, err, "device id b appears twice")
		})
	}
}

// devicemock refuses an image larger than --max-image with 413 before
// reading it; the push reports a permanent refusal.
func TestUploadLargerThanTheDeviceTakes(t *testing.T) {
	t.Parallel()
	im := newImage(t, 82, 2<<20)
	_, url := writeImage(t, im)
	f, srv := startFleet(t, fleet.Config{MaxImage: 1 << 20})
	_, err := newHarness(t).push(pushRequest(deviceURL(srv, firstDevice), im.firmware(url)))
	requirePermanent(t, err, workflows.ErrDeviceRefused, "push: device answered 413 Request Entity Too Large", "1048576 bytes")
	st := deviceStats(t, f, firstDevice)
	require.EqualValues(t, 1, st.Uploads)
	require.Zero(t, st.Bytes, "the body was refused unread")
}
