package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Scale: a rollout of tens of thousands of devices goes through many
// workflow runs (continue-as-new), each with a bounded history, and
// carries only bounded state between them. The test environment counts no
// history events, so these tests emulate the event cost of what a run
// does (eventCosts) and feed it to GetCurrentHistoryLength, as the paging
// tests do, but split by when the events really land: a child's start
// events when it starts, its completion events when it ends, and a page
// read when ListTargets answers.

const (
	// Temporal warns about a workflow history past this many events.
	historyWarnEvents = 10_240
	// Temporal's default limit on a payload (an input, a result, a query
	// answer) is 2 MB; the product promises a quarter of that.
	payloadLimitBytes = 256 << 10
)

// eventCosts is the emulated history cost of a run's work.
type eventCosts struct {
	start      int // WorkflowExecutionStarted, the first workflow task, the status search attribute
	page       int // ListTargets: activity scheduled, started, completed, and the workflow task it wakes
	childStart int // StartChildWorkflowExecutionInitiated, ChildWorkflowExecutionStarted, a share of a workflow task
	childEnd   int // ChildWorkflowExecutionCompleted/Failed and the workflow task it wakes, shared with others
	end        int // the last workflow task and WorkflowExecutionContinuedAsNew (or Completed)
}

// A real device costs the parent about 6 events (the paging tests'
// realisticHistory), half when it starts and half when it ends.
var realisticCosts = eventCosts{start: 10, page: 6, childStart: 3, childEnd: 3, end: 4}

func (c eventCosts) perChild() int { return c.childStart + c.childEnd }

// scaleOptions shape one scale run of a rollout.
type scaleOptions struct {
	costs eventCosts
	// standIn replaces the DeviceUpdate child with fleet.deviceUpdateStandIn
	// (see TestRolloutTwentyThousandDevices for why).
	standIn bool
	// suggestAt, when set, emulates a server that suggests continue-as-new
	// once a run's history reaches that many events.
	suggestAt int
	// queryEvery takes a progress query after every that many children
	// ended (and always at the end of each run).
	queryEvery int
	maxRuns    int
}

// childStart is what the parent saw when it started a device.
type childStart struct {
	deviceID  string
	seen      int  // GetCurrentHistoryLength
	suggested bool // GetContinueAsNewSuggested
}

// scaleRun is what one workflow run did.
type scaleRun struct {
	starts     []childStart
	ended      int // children that ended during the run
	pages      int
	history    int         // emulated events when the run ended
	checkpoint *Checkpoint // handed over to the next run; nil for the last
	canBytes   int         // payload bytes of the continue-as-new input (spec + checkpoint)
	cpJSON     int         // JSON bytes of the checkpoint alone
}

// pageCall is one ListTargets call as the workflow made it and as it was
// answered.
type pageCall struct {
	limit       int
	targets     int
	resultBytes int
}

// scaleOutcome is what a whole rollout did, over all its runs.
type scaleOutcome struct {
	report        Report
	resultBytes   int
	runs          []scaleRun
	queryBytes    []int // JSON size of every progress answer taken
	pages         []pageCall
	maxListInput  int // bytes of the largest ListTargets input
	maxChildInput int // bytes of the largest DeviceUpdate input
}

func (o scaleOutcome) starts() []childStart {
	var all []childStart
	for _, r := range o.runs {
		all = append(all, r.starts...)
	}
	return all
}

func (o scaleOutcome) maxCheckpointBytes() (canBytes, cpJSON int) {
	for _, r := range o.runs {
		canBytes, cpJSON = max(canBytes, r.canBytes), max(cpJSON, r.cpJSON)
	}
	return canBytes, cpJSON
}

func (o scaleOutcome) maxPageBytes() int {
	n := 0
	for _, p := range o.pages {
		n = max(n, p.resultBytes)
	}
	return n
}

// runScaleRollout executes the rollout, and each continue-as-new it asks
// for in a fresh environment with the input decoded from the
// ContinueAsNewError, until a run completes. Every run's history is
// emulated from o.costs; the sizes of everything that crosses the
// workflow's boundary (continue-as-new inputs, query answers, the result,
// activity and child inputs, pages) are measured on the way.
func runScaleRollout(t *testing.T, f *fleet, spec Spec, o scaleOptions) scaleOutcome {
	t.Helper()
	var out scaleOutcome
	var cp *Checkpoint
	ended := 0 // children ended over all runs
	inv := newPagedInventory(t, f, spec.ID)
	for run := 1; run <= o.maxRuns; run++ {
		env := newScaleEnv(f, inv, spec, o.standIn)
		this := &scaleRun{}
		rec := &childStartRecorder{onStart: func(info *workflow.Info, req DeviceRequest) {
			this.starts = append(this.starts, childStart{
				deviceID:  req.DeviceID,
				seen:      info.GetCurrentHistoryLength(),
				suggested: info.GetContinueAsNewSuggested(),
			})
			out.maxChildInput = max(out.maxChildInput, jsonSize(t, req))
		}}
		env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&childRunTimeout{}, rec}})

		addEvents := func(n int) {
			this.history += n
			env.SetCurrentHistoryLength(this.history)
			if o.suggestAt > 0 && this.history >= o.suggestAt {
				env.SetContinueAsNewSuggested(true)
			}
		}
		addEvents(o.costs.start)
		query := func() {
			v, err := env.QueryWorkflow(ProgressQuery)
			require.NoError(t, err)
			var raw json.RawMessage
			require.NoError(t, v.Get(&raw))
			out.queryBytes = append(out.queryBytes, len(raw))
			var rep Report
			require.NoError(t, json.Unmarshal(raw, &rep))
			checkInvariants(t, rep, spec)
		}
		env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) {
			addEvents(o.costs.childStart)
		})
		env.SetOnChildWorkflowCompletedListener(func(*workflow.Info, converter.EncodedValue, error) {
			addEvents(o.costs.childEnd)
			this.ended++
			ended++
			if o.queryEvery > 0 && ended%o.queryEvery == 0 {
				query()
			}
		})
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
			if info.ActivityType.Name == ListTargetsActivity {
				var req ListTargetsRequest
				require.NoError(t, args.Get(&req))
				out.maxListInput = max(out.maxListInput, jsonSize(t, req))
			}
		})
		env.SetOnActivityCompletedListener(func(info *activity.Info, result converter.EncodedValue, err error) {
			if info.ActivityType.Name != ListTargetsActivity {
				return
			}
			addEvents(o.costs.page)
			this.pages++
			require.NoError(t, err)
			var raw json.RawMessage
			require.NoError(t, result.Get(&raw))
			var page TargetPage
			require.NoError(t, json.Unmarshal(raw, &page))
			// The request is the last one the fleet recorded: activities
			// of one rollout run one at a time.
			f.mu.Lock()
			limit := f.listCalls[len(f.listCalls)-1].Limit
			f.mu.Unlock()
			out.pages = append(out.pages, pageCall{limit: limit, targets: len(page.Targets), resultBytes: len(raw)})
		})

		env.ExecuteWorkflow(FirmwareRollout, spec, cp)
		require.True(t, env.IsWorkflowCompleted(), "run %d did not end", run)
		query() // the last answer a run gives is its largest
		addEvents(o.costs.end)
		require.Equal(t, len(this.starts), this.ended, "run %d ended with devices running", run)

		var can *workflow.ContinueAsNewError
		if err := env.GetWorkflowError(); errors.As(err, &can) {
			require.Equal(t, FirmwareRolloutWorkflow, can.WorkflowType.Name)
			for _, p := range can.Input.GetPayloads() {
				this.canBytes += len(p.GetData())
				for k, v := range p.GetMetadata() {
					this.canBytes += len(k) + len(v)
				}
			}
			var next Spec
			var nextCP *Checkpoint
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next, &nextCP))
			require.Equal(t, spec, next, "the spec is handed over unchanged")
			require.NotNil(t, nextCP)
			require.Equal(t, run, nextCP.Runs)
			require.Equal(t, nextCP.Started, nextCP.Counts.Done(), "run %d handed over with devices uncounted", run)
			this.checkpoint = nextCP
			this.cpJSON = jsonSize(t, nextCP)
			out.runs = append(out.runs, *this)
			cp = nextCP
			continue
		}
		out.runs = append(out.runs, *this)
		out.report = rolloutResult(t, env)
		out.resultBytes = jsonSize(t, out.report)
		return out
	}
	t.Fatalf("the rollout did not complete in %d runs", o.maxRuns)
	return out
}

// newScaleEnv is newRolloutEnv with the fleet's inventory read once
// (pagedInventory) and, with standIn, fleet.deviceUpdateStandIn
// registered as DeviceUpdate.
func newScaleEnv(f *fleet, inv *pagedInventory, spec Spec, standIn bool) *testsuite.TestWorkflowEnvironment {
	env := newTestEnv()
	// A run starts hundreds of children; leave a loaded machine time for
	// that (the simulated clock hardly moves here anyway).
	env.SetTestTimeout(5 * time.Minute)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: spec.ID, TaskQueue: TaskQueue})
	env.RegisterWorkflowWithOptions(FirmwareRollout, workflow.RegisterOptions{Name: FirmwareRolloutWorkflow})
	if standIn {
		env.RegisterWorkflowWithOptions(f.deviceUpdateStandIn, workflow.RegisterOptions{Name: DeviceUpdateWorkflow})
	} else {
		env.RegisterWorkflowWithOptions(DeviceUpdate, workflow.RegisterOptions{Name: DeviceUpdateWorkflow})
	}
	env.RegisterActivityWithOptions(inv.ListTargets, activity.RegisterOptions{Name: ListTargetsActivity})
	env.RegisterActivityWithOptions(f.PushFirmware, activity.RegisterOptions{Name: PushFirmwareActivity})
	env.RegisterActivityWithOptions(f.VerifyVersion, activity.RegisterOptions{Name: VerifyVersionActivity})
	return env
}

// pagedInventory pages through the fleet's order, as fleet.ListTargets
// does, but takes that order from one fleet.ListTargets answer without a
// limit instead of hashing and sorting the whole fleet for every page: on
// 20,000 devices that is a tenth of the test's time. Its calls are
// recorded in the fleet's listCalls all the same.
type pagedInventory struct {
	f         *fleet
	rolloutID string
	all       []Target
}

func newPagedInventory(t *testing.T, f *fleet, rolloutID string) *pagedInventory {
	t.Helper()
	ctx := context.Background()
	whole, err := f.ListTargets(ctx, ListTargetsRequest{RolloutID: rolloutID})
	require.NoError(t, err)
	inv := &pagedInventory{f: f, rolloutID: rolloutID, all: whole.Targets}
	// it pages as the fleet does
	for _, req := range []ListTargetsRequest{
		{RolloutID: rolloutID, Limit: 100},
		{RolloutID: rolloutID, Limit: 100, After: whole.Targets[len(whole.Targets)/2].Key},
		{RolloutID: rolloutID, Limit: 100, After: whole.Targets[max(0, len(whole.Targets)-50)].Key},
	} {
		want, err := f.ListTargets(ctx, req)
		require.NoError(t, err)
		got, err := inv.ListTargets(ctx, req)
		require.NoError(t, err)
		require.Equal(t, want, got, "pagedInventory differs from the fleet after %q", req.After)
	}
	f.mu.Lock()
	f.listCalls = nil
	f.mu.Unlock()
	return inv
}

func (p *pagedInventory) ListTargets(_ context.Context, req ListTargetsRequest) (TargetPage, error) {
	p.f.mu.Lock()
	p.f.listCalls = append(p.f.listCalls, req)
	p.f.mu.Unlock()
	if req.RolloutID != p.rolloutID {
		return TargetPage{}, fmt.Errorf("pagedInventory of rollout %s asked for rollout %s", p.rolloutID, req.RolloutID)
	}
	rest := p.all
	if req.After != "" {
		rest = rest[sort.Search(len(rest), func(i int) bool { return rest[i].Key > req.After }):]
	}
	page := TargetPage{Selected: len(p.all), Targets: rest}
	if req.Limit > 0 && len(rest) > req.Limit {
		page.Targets, page.More = rest[:req.Limit], true
	}
	return page, nil
}

func jsonSize(t *testing.T, v any) int {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return len(b)
}

// deviceUpdateStandIn replaces the DeviceUpdate child in tests of the
// parent at scale: it takes the device's one push outcome from the fleet
// (counted like a real push) and answers as DeviceUpdate does, without
// verification, activities or retries. Only for fleets whose pushes
// decide on the first attempt.
func (f *fleet) deviceUpdateStandIn(ctx workflow.Context, req DeviceRequest) (DeviceResult, error) {
	f.mu.Lock()
	f.pushCalls[req.DeviceID]++
	f.pushWFIDs[req.DeviceID] = append(f.pushWFIDs[req.DeviceID], workflow.GetInfo(ctx).WorkflowExecution.ID)
	push := f.pushes[req.DeviceID]
	if push == nil {
		push = f.defPush
	}
	f.mu.Unlock()
	if push == nil {
		push = pushOK
	}
	res, err := push(context.Background(), 1)
	switch {
	case err != nil:
		return DeviceResult{}, deviceFailure("push", err)
	case res.AlreadyInstalled:
		return DeviceResult{Outcome: OutcomeAlreadyCurrent, PreviousVersion: res.PreviousVersion}, nil
	}
	return DeviceResult{Outcome: OutcomeUpdated, PreviousVersion: res.PreviousVersion}, nil
}

// childStartRecorder reports, from inside the parent, every DeviceUpdate
// it starts with the workflow info it started it under.
type childStartRecorder struct {
	interceptor.WorkerInterceptorBase
	onStart func(info *workflow.Info, req DeviceRequest)
}

func (r *childStartRecorder) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &childStartInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, rec: r}
}

type childStartInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	rec *childStartRecorder
}

func (i *childStartInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&childStartOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, rec: i.rec})
}

type childStartOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	rec *childStartRecorder
}

func (o *childStartOutbound) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	if childWorkflowType == DeviceUpdateWorkflow && len(args) == 1 {
		if req, ok := args[0].(DeviceRequest); ok {
			o.rec.onStart(o.Next.GetInfo(ctx), req)
		}
	}
	return o.Next.ExecuteChildWorkflow(ctx, childWorkflowType, args...)
}

// fleetIDs names n devices with IDs of one width whatever n, so that
// sizes measured on fleets of different sizes compare.
func fleetIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("pos-%05d", i)
	}
	return ids
}

// inRolloutOrder sorts device IDs the way the rollout starts them.
func inRolloutOrder(rolloutID string, ids []string) []string {
	sorted := slices.Clone(ids)
	sort.Slice(sorted, func(i, j int) bool { return OrderKey(rolloutID, sorted[i]) < OrderKey(rolloutID, sorted[j]) })
	return sorted
}

const refusedReason = "push: device refused the upload: 403 Forbidden"

func alreadyCurrent(context.Context, int) (PushResult, error) {
	return PushResult{AlreadyInstalled: true, PreviousVersion: "2.4.0"}, nil
}

// mixedFleet: every 97th device refuses the upload for good, every 13th
// (of the others) already runs the target version, the rest update.
func mixedFleet(n int) (f *fleet, ids []string, refused map[string]bool, current int) {
	ids = fleetIDs(n)
	f = newFleet(ids...)
	refused = map[string]bool{}
	for i, id := range ids {
		switch {
		case i%97 == 0:
			f.pushes[id] = pushAlways(errDeviceRefused(refusedReason))
			refused[id] = true
		case i%13 == 5:
			f.pushes[id] = alreadyCurrent
			current++
		}
	}
	return f, ids, refused, current
}

// checkDrainsAtBudget asserts that a run started no device once its
// history reached the point where it must drain (maxHistoryEvents less
// room for the children still running, 4 events each, as historyFull
// reserves), except the one start that finds it out, and that every run
// but the last handed over because of it (or of the server's suggestion).
func checkDrainsAtBudget(t *testing.T, spec Spec, out scaleOutcome) {
	t.Helper()
	budget := spec.HistoryBudget()
	drainAt := max(budget/5, budget-4*spec.Concurrency())
	for i, r := range out.runs {
		require.NotEmpty(t, r.starts, "run %d started no device", i+1)
		for j, s := range r.starts[:len(r.starts)-1] {
			require.False(t, s.seen >= drainAt || s.suggested,
				"run %d started device %d (%s) after its history reached %d of a budget of %d (suggested: %v)",
				i+1, j+1, s.deviceID, s.seen, budget, s.suggested)
		}
		if last := r.starts[len(r.starts)-1]; r.checkpoint != nil {
			assert.True(t, last.seen >= drainAt || last.suggested,
				"run %d handed over at %d events, before its budget of %d", i+1, last.seen, budget)
		}
	}
}

// checkEveryDeviceOnce asserts that every device was started (and its
// push made) exactly once over all runs, under its one child ID.
func checkEveryDeviceOnce(t *testing.T, f *fleet, spec Spec, ids []string, out scaleOutcome) {
	t.Helper()
	var started []string
	for _, s := range out.starts() {
		started = append(started, s.deviceID)
	}
	slices.Sort(started)
	require.Equal(t, len(ids), len(started), "devices started over all runs")
	require.Equal(t, len(ids), len(slices.Compact(started)), "a device was started twice")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.pushCalls, len(ids), "devices pushed")
	for _, id := range ids {
		require.Equal(t, 1, f.pushCalls[id], "pushes to %s", id)
		require.Equal(t, []string{spec.ID + "/" + id}, f.pushWFIDs[id], "children that pushed %s", id)
	}
}

// checkBoundedPayloads asserts that nothing crossing the workflow's
// boundary came near the payload limit.
func checkBoundedPayloads(t *testing.T, out scaleOutcome) {
	t.Helper()
	for i, r := range out.runs {
		if r.checkpoint != nil {
			assert.Less(t, r.canBytes, payloadLimitBytes, "continue-as-new input of run %d", i+1)
		}
	}
	require.NotEmpty(t, out.queryBytes)
	for i, n := range out.queryBytes {
		require.Less(t, n, payloadLimitBytes, "progress answer %d", i+1)
	}
	assert.Less(t, out.resultBytes, payloadLimitBytes, "the rollout's result")
	assert.Less(t, out.maxPageBytes(), payloadLimitBytes, "a ListTargets page")
	assert.Less(t, out.maxListInput, payloadLimitBytes, "a ListTargets input")
	assert.Less(t, out.maxChildInput, payloadLimitBytes, "a DeviceUpdate input")
}

// TestRolloutTwentyThousandDevices drives a 20,000-device rollout with the
// default window (50) and a history budget of 5,000 events to its end
// through continue-as-new runs, with failures and devices already
// current.
//
// Why not the default budget of 7,000: a run would then start about 1,100
// children, and the test environment deadlocks when a workflow that has
// started more than about a thousand children closes. It keeps every
// child it ever started in its table of running workflows, and on the
// parent's close posts a cancel request (ParentClosePolicy REQUEST_CANCEL)
// for each into its callback channel, which holds 1,000, from the very
// loop that drains that channel. A real server has no such limit; the
// product's default budget only changes how many runs there are.
//
// The DeviceUpdate children are stand-ins (fleet.deviceUpdateStandIn,
// registered under the DeviceUpdate name; env.OnWorkflow would do too, but
// testify formats the workflow context of every call to match it, which
// costs more than the stand-in itself): at this scale it is the parent that is under
// test (paging, the window, the budget, the hand-over, counting, bounded
// state), and a real child costs its own test environment, an activity
// and a local activity, several times the parent's share of the work. The
// real DeviceUpdate runs across continue-as-new in
// TestRolloutRealChildrenAcrossContinueAsNew and on its own in
// device_test.go.
func TestRolloutTwentyThousandDevices(t *testing.T) {
	const n = 20_000
	f, ids, refused, current := mixedFleet(n)
	spec := validSpec("fw-20k")
	spec.MaxHistoryEvents = 5000 // about 790 devices a run: see above
	costs := realisticCosts

	began := time.Now()
	out := runScaleRollout(t, f, spec, scaleOptions{costs: costs, standIn: true, queryEvery: 500, maxRuns: 60})
	t.Logf("%d devices in %d runs, %d progress queries, in %s", n, len(out.runs), len(out.queryBytes), time.Since(began).Round(time.Millisecond))

	rep := out.report
	// exact totals: every device has exactly one outcome
	failed := len(refused)
	require.Equal(t, 207, failed) // 0, 97, ..., 19982
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, n, rep.Selected)
	assert.Equal(t, n, rep.Started)
	assert.Equal(t, 0, rep.Running)
	assert.Equal(t, Counts{Succeeded: n - failed - current, AlreadyCurrent: current, Failed: failed}, rep.Counts)
	assert.Equal(t, n, rep.Counts.Succeeded+rep.Counts.AlreadyCurrent+rep.Counts.Failed)
	require.Len(t, rep.Phases, 1)
	assert.Equal(t, rep.Counts, rep.Phases[0].Counts)
	assert.Equal(t, n, rep.Phases[0].Started)
	checkInvariants(t, rep, spec)

	// failures beyond the first 100 are counted, not listed
	require.Len(t, rep.Failures, MaxListedFailures)
	listed := map[string]bool{}
	for _, fl := range rep.Failures {
		assert.True(t, refused[fl.DeviceID], "%s is listed as failed", fl.DeviceID)
		assert.Equal(t, refusedReason, fl.Reason)
		listed[fl.DeviceID] = true
	}
	assert.Len(t, listed, MaxListedFailures, "a failure is listed twice")

	checkEveryDeviceOnce(t, f, spec, ids, out)

	// many runs, each with a bounded history
	runs := out.runs
	assert.Equal(t, len(runs), rep.Runs)
	assert.GreaterOrEqual(t, len(runs), 10, "the rollout continued as new many times")
	checkDrainsAtBudget(t, spec, out)
	budget := spec.HistoryBudget()
	// Past the drain point the run starts at most one more device, and
	// its history has meanwhile grown by at most one window of children,
	// which then end: a window's worth of events on top of the budget.
	drainMargin := (spec.Concurrency() + 1) * costs.perChild()
	for i, r := range runs {
		t.Logf("run %d: %d devices, %d pages, %d events, continue-as-new input %d bytes", i+1, len(r.starts), r.pages, r.history, r.canBytes)
		assert.Less(t, r.history, historyWarnEvents, "run %d history", i+1)
		assert.LessOrEqual(t, r.history, budget+drainMargin, "run %d history", i+1)
		if r.checkpoint != nil {
			assert.Greater(t, r.history, budget/2, "run %d handed over long before its budget", i+1)
		}
	}

	// checkpoints: bounded, consistent, and carrying the failures on
	prev := Checkpoint{}
	for i, r := range runs[:len(runs)-1] {
		cp := r.checkpoint
		assert.Equal(t, n, cp.Selected)
		assert.Equal(t, prev.Started+len(r.starts), cp.Started, "run %d's devices", i+1)
		assert.Equal(t, cp.Started, cp.Counts.Done())
		assert.LessOrEqual(t, len(cp.Failures), MaxListedFailures)
		require.GreaterOrEqual(t, len(cp.Failures), len(prev.Failures), "run %d", i+1)
		assert.True(t, slices.Equal(prev.Failures, cp.Failures[:len(prev.Failures)]), "run %d kept the failures listed before", i+1)
		assert.Equal(t, rep.StartedAt, cp.StartedAt)
		assert.Greater(t, cp.Cursor, prev.Cursor)
		prev = *cp
	}

	// pages: read by cursor, never larger than their limit
	total := 0
	for i, p := range out.pages {
		require.Equal(t, 100, p.limit, "page %d", i+1)
		require.LessOrEqual(t, p.targets, p.limit, "page %d", i+1)
		total += p.targets
	}
	assert.Less(t, total, n+len(runs)*100, "pages re-read beyond one per run")

	checkBoundedPayloads(t, out)
	canBytes, cpJSON := out.maxCheckpointBytes()
	t.Logf("largest: continue-as-new input %d B (checkpoint %d B), progress answer %d B, result %d B, page %d B",
		canBytes, cpJSON, slices.Max(out.queryBytes), out.resultBytes, out.maxPageBytes())
}

// TestRolloutRealChildrenAcrossContinueAsNew runs real DeviceUpdate
// children (push and verify activities against the fake fleet) through
// runs that hand over when the server suggests continue-as-new.
func TestRolloutRealChildrenAcrossContinueAsNew(t *testing.T) {
	const n = 2_000
	f, ids, refused, current := mixedFleet(n)
	spec := validSpec("fw-2k-real")
	spec.MaxHistoryEvents = MaxMaxHistoryEvents // the suggestion comes first

	began := time.Now()
	out := runScaleRollout(t, f, spec, scaleOptions{costs: realisticCosts, suggestAt: 1500, queryEvery: 250, maxRuns: 30})
	t.Logf("%d devices in %d runs in %s", n, len(out.runs), time.Since(began).Round(time.Millisecond))

	rep := out.report
	failed := len(refused)
	assert.Equal(t, StatusCompletedWithFailures, rep.Status)
	assert.Equal(t, Counts{Succeeded: n - failed - current, AlreadyCurrent: current, Failed: failed}, rep.Counts)
	assert.Len(t, rep.Failures, failed)
	for _, fl := range rep.Failures {
		assert.True(t, refused[fl.DeviceID], "%s is listed as failed", fl.DeviceID)
		assert.Equal(t, refusedReason, fl.Reason)
	}
	checkInvariants(t, rep, spec)
	checkEveryDeviceOnce(t, f, spec, ids, out)
	for i, id := range ids {
		want := 1 // only devices that took the image are verified
		if refused[id] || f.pushes[id] != nil {
			want = 0
		}
		require.Equal(t, want, f.verifyCount(id), "verifications of %s (%d)", id, i)
	}

	assert.Equal(t, len(out.runs), rep.Runs)
	assert.GreaterOrEqual(t, len(out.runs), 5)
	checkDrainsAtBudget(t, spec, out)
	for i, r := range out.runs {
		if r.checkpoint != nil {
			last := r.starts[len(r.starts)-1]
			assert.True(t, last.suggested, "run %d handed over because the server suggested it", i+1)
		}
		assert.Less(t, r.history, 1500+(spec.Concurrency()+1)*realisticCosts.perChild(), "run %d history", i+1)
	}
	checkBoundedPayloads(t, out)
}

// TestRolloutStateDoesNotGrowWithFleet runs one rollout shape on 200 and
// on 20,000 devices, both with the same 120 failures (more than are
// listed) among the first devices started, and compares what crosses the
// workflow's boundary: the continue-as-new checkpoint, the progress
// answer, the result, the inputs of ListTargets and DeviceUpdate, and the
// pages. They must not scale with the fleet: only numbers grow a few
// digits.
func TestRolloutStateDoesNotGrowWithFleet(t *testing.T) {
	const failing = 120
	// Sixteen counters at most, each up to three digits longer on the
	// larger fleet (200 -> 20000, 2 -> 134 runs).
	const slack = 64

	shape := func(id string) Spec {
		spec := validSpec(id)
		spec.MaxConcurrent = 20
		spec.MaxHistoryEvents = 1000 // about 150 devices a run
		return spec
	}
	rollout := func(n int) scaleOutcome {
		ids := fleetIDs(n)
		f := newFleet(ids...)
		spec := shape("fw-scale")
		for _, id := range inRolloutOrder(spec.ID, ids)[:failing] {
			f.pushes[id] = pushAlways(errDeviceRefused(refusedReason))
		}
		out := runScaleRollout(t, f, spec, scaleOptions{costs: realisticCosts, standIn: true, queryEvery: 100, maxRuns: 300})
		rep := out.report
		require.Equal(t, Counts{Succeeded: n - failing, Failed: failing}, rep.Counts, "%d devices", n)
		require.Len(t, rep.Failures, MaxListedFailures)
		require.Greater(t, len(out.runs), 1, "%d devices: the rollout continued as new", n)
		require.Len(t, out.runs[0].checkpoint.Failures, MaxListedFailures,
			"%d devices: the first hand-over already carries a full list of failures", n)
		checkEveryDeviceOnce(t, f, spec, ids, out)
		checkDrainsAtBudget(t, spec, out)
		checkBoundedPayloads(t, out)
		return out
	}

	began := time.Now()
	small := rollout(200)
	large := rollout(20_000)
	t.Logf("200 devices in %d runs, 20,000 in %d, in %s", len(small.runs), len(large.runs), time.Since(began).Round(time.Millisecond))

	sizes := func(o scaleOutcome) map[string]int {
		canBytes, cpJSON := o.maxCheckpointBytes()
		return map[string]int{
			"continue-as-new input": canBytes,
			"checkpoint":            cpJSON,
			"progress answer":       slices.Max(o.queryBytes),
			"result":                o.resultBytes,
			"ListTargets input":     o.maxListInput,
			"ListTargets page":      o.maxPageBytes(),
			"DeviceUpdate input":    o.maxChildInput,
		}
	}
	smallSizes, largeSizes := sizes(small), sizes(large)
	for what, s := range smallSizes {
		l := largeSizes[what]
		t.Logf("%-22s 200 devices: %6d B   20,000 devices: %6d B", what, s, l)
		assert.Greater(t, s, 0, what)
		assert.InDelta(t, s, l, slack, "%s grows with the fleet", what)
	}

	// pages never exceed the page limit, which does not depend on the fleet
	for _, o := range []scaleOutcome{small, large} {
		for i, p := range o.pages {
			require.Equal(t, 100, p.limit, "page %d", i+1)
			require.LessOrEqual(t, p.targets, p.limit, "page %d", i+1)
		}
	}

	// the first hand-over of both: the same state, bar the numbers
	assert.InDelta(t, small.runs[0].cpJSON, large.runs[0].cpJSON, slack)
}
