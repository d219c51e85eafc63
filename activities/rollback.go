package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// candidates are the devices a page is chosen from: the inventory, or for
// a rollback the devices the rolled-back rollout updated.
func (a *Activities) candidates(ctx context.Context, req workflows.ListTargetsRequest) ([]workflows.InventoryDevice, error) {
	if req.RollbackOf == "" {
		return LoadInventory(ctx, a.sources(), req.Inventory)
	}
	return a.updated.of(ctx, a, req.RollbackOf, req.Expect)
}

// updatedCache keeps, per rolled-back rollout, the devices it updated: a
// rollback reads every DeviceUpdate result once, not once per page.
type updatedCache struct {
	mu      sync.Mutex
	entries map[string]updatedEntry
}

type updatedEntry struct {
	devices []workflows.InventoryDevice
	at      time.Time
}

const updatedCacheTTL = 10 * time.Minute

func (c *updatedCache) of(ctx context.Context, a *Activities, rolloutID string, expect int) ([]workflows.InventoryDevice, error) {
	c.mu.Lock()
	e, ok := c.entries[rolloutID]
	c.mu.Unlock()
	if ok && time.Since(e.at) < updatedCacheTTL {
		return e.devices, nil
	}
	devices, err := a.readUpdated(ctx, rolloutID, expect)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]updatedEntry{}
	}
	c.entries[rolloutID] = updatedEntry{devices: devices, at: time.Now()}
	return devices, nil
}

// readUpdated finds the devices a rollout updated, with the address and
// the version each ran before, from the input and result that every
// DeviceUpdate recorded in Temporal. Devices that were already current are
// left out: the rollout did not change them.
func (a *Activities) readUpdated(ctx context.Context, rolloutID string, expect int) ([]workflows.InventoryDevice, error) {
	if a.Temporal == nil {
		return nil, fmt.Errorf("rollback of %s: this worker has no Temporal client", rolloutID)
	}
	query := fmt.Sprintf("WorkflowType = '%s' AND RolloutID = '%s' AND ExecutionStatus = 'Completed'", workflows.DeviceUpdateWorkflow, rolloutID)
	count, err := a.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return nil, fmt.Errorf("counting the device updates of %s: %w", rolloutID, err)
	}
	if int(count.GetCount()) < expect {
		return nil, fmt.Errorf("visibility shows %d of the %d completed device updates of %s so far", count.GetCount(), expect, rolloutID)
	}
	var devices []workflows.InventoryDevice
	var token []byte
	for {
		resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing the device updates of %s: %w", rolloutID, err)
		}
		for _, e := range resp.GetExecutions() {
			req, result, err := a.deviceUpdateRecord(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
			if err != nil {
				return nil, err
			}
			if result.Outcome == workflows.OutcomeUpdated {
				devices = append(devices, workflows.InventoryDevice{ID: req.DeviceID, Address: req.Address, FirmwareVersion: result.PreviousVersion})
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return devices, nil
		}
	}
}

// deviceUpdateRecord reads a DeviceUpdate's input and result.
func (a *Activities) deviceUpdateRecord(ctx context.Context, workflowID, runID string) (workflows.DeviceRequest, workflows.DeviceResult, error) {
	var req workflows.DeviceRequest
	var result workflows.DeviceResult
	dc := a.Payloads
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	events := a.Temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for events.HasNext() {
		e, err := events.Next()
		if err != nil {
			return req, result, fmt.Errorf("reading %s: %w", workflowID, err)
		}
		if started := e.GetWorkflowExecutionStartedEventAttributes(); started != nil {
			if err := dc.FromPayloads(started.GetInput(), &req); err != nil {
				// A payload this worker cannot decode (encrypted with a key it
				// lacks) will not decode on a retry either.
				return req, result, permanent(workflows.ErrInventory, fmt.Sprintf("reading the input of %s: %v", workflowID, err))
			}
		}
		if done := e.GetWorkflowExecutionCompletedEventAttributes(); done != nil {
			if err := dc.FromPayloads(done.GetResult(), &result); err != nil {
				return req, result, permanent(workflows.ErrInventory, fmt.Sprintf("reading the result of %s: %v", workflowID, err))
			}
		}
	}
	return req, result, nil
}
