package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// maxInventoryBytes bounds an inventory read, from a file or a server:
// ~1 KB a device for 200,000. JSON decoding holds it all in memory.
const maxInventoryBytes = 256 << 20

// InventoryError is a permanent problem with the inventory itself.
type InventoryError struct{ msg string }

func (e *InventoryError) Error() string { return e.msg }

func inventoryErr(format string, args ...any) error {
	return &InventoryError{msg: fmt.Sprintf(format, args...)}
}

// ListTargets reads the inventory and returns the next page of selected
// devices in rollout order (workflows.OrderKey), after req.After. Devices
// before the cursor were handled already, so later changes to them (a
// new firmware_version, for one) cannot shift what is left to do.
func (a *Activities) ListTargets(ctx context.Context, req workflows.ListTargetsRequest) (workflows.TargetPage, error) {
	devices, err := a.candidates(ctx, req)
	if err != nil {
		var inv *InventoryError
		if errors.As(err, &inv) {
			return workflows.TargetPage{}, permanent(workflows.ErrInventory, err.Error())
		}
		return workflows.TargetPage{}, transient(ctx, "inventory: "+err.Error(), 0)
	}
	targets := SelectTargets(devices, req.RolloutID, req.Selector)
	start := sort.Search(len(targets), func(i int) bool { return targets[i].Key > req.After })
	end := min(len(targets), start+req.Limit)
	return workflows.TargetPage{
		Targets:  targets[start:end],
		Selected: len(targets),
		More:     end < len(targets),
	}, nil
}

// SelectTargets applies the selector and orders the devices for the
// rollout.
func SelectTargets(devices []workflows.InventoryDevice, rolloutID string, sel workflows.Selector) []workflows.Target {
	var targets []workflows.Target
	for _, d := range devices {
		if sel.Matches(d) {
			targets = append(targets, workflows.Target{
				ID:      d.ID,
				Address: strings.TrimRight(d.Address, "/"),
				Key:     workflows.OrderKey(rolloutID, d.ID),
			})
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Key < targets[j].Key })
	return targets
}

// LoadInventory reads and checks an inventory from a path, a file:// URL
// or an http(s):// URL. Problems with the content are *InventoryError;
// a server that cannot be reached is a plain error, worth retrying.
func LoadInventory(ctx context.Context, client *http.Client, src string) ([]workflows.InventoryDevice, error) {
	return loadInventory(ctx, client, src, maxInventoryBytes)
}

// loadInventory reads at most limit bytes of the inventory.
func loadInventory(ctx context.Context, client *http.Client, src string, limit int64) ([]workflows.InventoryDevice, error) {
	body, err := openInventory(ctx, client, src, limit)
	if err != nil {
		return nil, err
	}
	defer func() { _ = body.Close() }()
	var devices []workflows.InventoryDevice
	dec := json.NewDecoder(capped(body, limit, "inventory "+src))
	if err := dec.Decode(&devices); err != nil {
		if tooLarge, ok := errors.AsType[*tooLargeError](err); ok {
			return nil, inventoryErr("%v", tooLarge)
		}
		return nil, inventoryErr("inventory %s is not a JSON array of devices: %v", src, err)
	}
	seen := make(map[string]bool, len(devices))
	for i, d := range devices {
		if d.ID == "" {
			return nil, inventoryErr("inventory %s: device #%d has no id", src, i+1)
		}
		if seen[d.ID] {
			return nil, inventoryErr("inventory %s: device id %s appears twice", src, oneLine(d.ID))
		}
		seen[d.ID] = true
		if u, err := url.Parse(d.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, inventoryErr("inventory %s: device %s: address %q is not an http(s) URL", src, oneLine(d.ID), d.Address)
		}
	}
	return devices, nil
}

// oneLine is s as it is when it prints as one plain line, else quoted: a
// device id from the inventory may hold anything JSON can.
func oneLine(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

func openInventory(ctx context.Context, client *http.Client, src string, limit int64) (io.ReadCloser, error) {
	u, err := url.Parse(src)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, inventoryErr("inventory %s: %v", src, err)
		}
		resp, err := followingRedirects(client).Do(req)
		if err != nil {
			if why := tlsFailure("the inventory server", err); why != "" {
				return nil, inventoryErr("inventory %s: %s", src, why)
			}
			if errors.Is(err, errRedirectRefused) {
				return nil, inventoryErr("inventory %v", err)
			}
			return nil, fmt.Errorf("inventory %s unreachable: %w", src, err)
		}
		if resp.StatusCode != http.StatusOK {
			drainAndClose(resp.Body)
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
				return nil, fmt.Errorf("inventory %s: server answered %s", src, resp.Status)
			}
			return nil, inventoryErr("inventory %s: server answered %s", src, resp.Status)
		}
		if resp.ContentLength > limit {
			_ = resp.Body.Close()
			return nil, inventoryErr("inventory %s is %d bytes, larger than the %s limit", src, resp.ContentLength, byteSize(limit))
		}
		return resp.Body, nil
	}
	path := src
	if err == nil && u.Scheme == "file" {
		path = u.Path
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, inventoryErr("inventory %s is not readable: %v", src, errors.Unwrap(err))
	}
	return f, nil
}
