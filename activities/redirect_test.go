package activities_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/devicemock/testpki"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// redirector answers /hop/N with a redirect to /hop/N-1, and /hop/0 with
// a redirect to target.
func redirector(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Path[len("/hop/"):])
		if err != nil || n == 0 {
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		http.Redirect(w, r, "/hop/"+strconv.Itoa(n-1), http.StatusFound)
	}
}

// Firmware and inventory fetches follow a few redirects, but never from
// https down to plain http, where the bytes could be changed on the way.
func TestSourceRedirects(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "CA")
	im := newImage(t, 90, 64<<10)
	plainFW := newFirmwareServer(t, im, nil)
	var inventoryGets atomic.Int64
	plainInventory := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		inventoryGets.Add(1)
		_, _ = w.Write([]byte(`[{"id":"a","address":"http://10.0.0.1"}]`))
	}))
	t.Cleanup(plainInventory.Close)

	tlsServer := func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	secureFW := tlsServer(redirector(plainFW.url()))
	secureInventory := tlsServer(redirector(plainInventory.URL + "/inventory.json"))
	plainToPlain := httptest.NewServer(redirector(plainFW.url()))
	t.Cleanup(plainToPlain.Close)
	sources := activities.NewSourceClient(&tls.Config{RootCAs: ca.Pool()})
	_, devices := startFleet(t, fleet.Config{Devices: 3})

	push := func(device, url string) error {
		_, err := newHarness(t, withSources(sources)).push(pushRequest(deviceURL(devices, device), im.firmware(url)))
		return err
	}

	t.Run("https to http refused", func(t *testing.T) {
		requirePermanent(t, push("dev-00001", secureFW.URL+"/hop/2"), workflows.ErrFirmwareSource,
			"firmware url: ", "redirect refused: from https to plain http")
		require.Zero(t, plainFW.gets.Load(), "the plain http server was never asked")

		_, err := activities.LoadInventory(context.Background(), sources, secureInventory.URL+"/hop/0")
		var inventoryErr *activities.InventoryError
		require.True(t, errors.As(err, &inventoryErr), "want an InventoryError, got %v", err)
		require.ErrorContains(t, err, "redirect refused: from https to plain http")
		require.Zero(t, inventoryGets.Load())
	})
	t.Run("more than five hops refused", func(t *testing.T) {
		requirePermanent(t, push("dev-00002", plainToPlain.URL+"/hop/5"), workflows.ErrFirmwareSource,
			"redirect refused: more than 5 redirects")
		require.Zero(t, plainFW.gets.Load())
	})
	t.Run("five hops followed", func(t *testing.T) {
		res, err := newHarness(t, withSources(sources)).push(pushRequest(deviceURL(devices, "dev-00003"), im.firmware(plainToPlain.URL+"/hop/4")))
		require.NoError(t, err)
		require.Equal(t, im.size, res.BytesSent)
		require.EqualValues(t, 1, plainFW.gets.Load())
	})
}
