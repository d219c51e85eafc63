package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"strings"
)

// Device is one entry of the inventory, the fleet registry format.
type Device struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Address         string            `json:"address"`
	Status          string            `json:"status"`
	FirmwareVersion string            `json:"firmware_version"`
	Location        string            `json:"location"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

const (
	statusOnline  = "online"
	statusOffline = "offline"
)

// LoadInventory reads an inventory file (a JSON array of Device) for --fleet.
// Errors are one line and start with path, plus line:column for bad JSON.
func LoadInventory(path string) ([]Device, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if pathErr, ok := errors.AsType[*fs.PathError](err); ok {
			err = pathErr.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var devices []Device
	if err := json.Unmarshal(data, &devices); err != nil {
		return nil, fmt.Errorf("%s%s: %w", path, jsonErrorPosition(data, err), err)
	}
	if devices == nil {
		return nil, fmt.Errorf("%s: want a JSON array of devices, got null", path)
	}
	if err := validateInventory(devices); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return devices, nil
}

// jsonErrorPosition turns the byte offset of a JSON error into ":line:column".
func jsonErrorPosition(data []byte, err error) string {
	var offset int64
	if syntaxErr, ok := errors.AsType[*json.SyntaxError](err); ok {
		offset = syntaxErr.Offset
	} else if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		offset = typeErr.Offset
	} else {
		return ""
	}
	before := data[:min(offset, int64(len(data)))]
	line := bytes.Count(before, []byte("\n")) + 1
	column := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(":%d:%d", line, column)
}

// validateInventory checks that every device can be served at /devices/<id>.
func validateInventory(devices []Device) error {
	if len(devices) == 0 {
		return errors.New("no devices")
	}
	seen := make(map[string]bool, len(devices))
	for i, d := range devices {
		switch {
		case d.ID == "":
			return fmt.Errorf("device #%d: missing id", i+1)
		case strings.Contains(d.ID, "/"):
			return fmt.Errorf("device #%d: id %q must not contain '/'", i+1, d.ID)
		case seen[d.ID]:
			return fmt.Errorf("device #%d: duplicate id %q", i+1, d.ID)
		}
		seen[d.ID] = true
	}
	return nil
}

// Inventory lists every device, sorted by id, with its current firmware and
// its address under baseURL (e.g. "http://127.0.0.1:9000").
func (f *Fleet) Inventory(baseURL string) []Device {
	baseURL = strings.TrimSuffix(baseURL, "/")
	now := f.clock.Now()
	devices := make([]Device, len(f.devices))
	for i, d := range f.devices {
		version, _ := d.state(now)
		devices[i] = Device{
			ID:              d.id,
			Name:            d.name,
			Address:         baseURL + "/devices/" + url.PathEscape(d.id),
			Status:          d.status,
			FirmwareVersion: version,
			Location:        d.location,
			Metadata:        maps.Clone(d.metadata),
		}
	}
	return devices
}
