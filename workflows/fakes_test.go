package workflows

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Shared test fixtures: a valid spec, an in-memory fleet whose activities
// record every call, and helpers to run a rollout in the test environment.

const testSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func validSpec(id string) Spec {
	return Spec{
		ID: id,
		Firmware: Firmware{
			Version: "2.4.0",
			URL:     "file:///srv/fw/pos-2.4.0.bin",
			SHA256:  testSHA,
			Size:    1024,
		},
		Inventory: "http://127.0.0.1:9000/_fleet/inventory",
	}
}

func deviceIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%03d", i)
	}
	return ids
}

// pushFn decides one PushFirmware attempt (attempt counts from 1).
type pushFn func(ctx context.Context, attempt int) (PushResult, error)

// verifyFn decides one VerifyVersion attempt.
type verifyFn func(ctx context.Context, req VerifyRequest, attempt int) (VerifyResult, error)

func pushOK(context.Context, int) (PushResult, error) {
	return PushResult{PreviousVersion: "2.3.1", BytesSent: 1024}, nil
}

// failFirst fails the first n attempts with err, then succeeds.
func failFirst(n int, err error) pushFn {
	return func(ctx context.Context, attempt int) (PushResult, error) {
		if attempt <= n {
			return PushResult{}, err
		}
		return pushOK(ctx, attempt)
	}
}

func pushAlways(err error) pushFn {
	return func(context.Context, int) (PushResult, error) { return PushResult{}, err }
}

func unavailable() error {
	return temporal.NewApplicationError("push: device answered 503 Service Unavailable", "DeviceUnavailable")
}

func errDeviceRefused(msg string) error {
	return temporal.NewApplicationError(msg, ErrDeviceRefused)
}

// slowPush makes a push take one retry interval of simulated time: the
// first attempt fails transiently, the retry (after the policy's initial
// interval, skipped by the test clock) succeeds. That lets delayed
// callbacks observe the rollout while devices are in flight.
var slowPush = failFirst(1, unavailable())

// blockPush is a push that never ends on its own: it heartbeats until its
// context is cancelled and then returns the context's error, as the real
// PushFirmware does when the rollout is force-cancelled.
func (f *fleet) blockPush(ctx context.Context, attempt int) (PushResult, error) {
	for {
		activity.RecordHeartbeat(ctx, attempt)
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.pushCancelled++
			f.mu.Unlock()
			return PushResult{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// fleet is an in-memory inventory plus PushFirmware/VerifyVersion fakes.
// It is safe for use by concurrent activities and survives across test
// environments (continue-as-new runs).
type fleet struct {
	mu sync.Mutex

	ids        []string
	pushes     map[string]pushFn   // per device; default pushOK
	verifies   map[string]verifyFn // per device; default reports the target version
	defPush    pushFn
	listErr    error
	listCalls  []ListTargetsRequest
	pushCalls  map[string]int
	verifyCall map[string]int
	pushWFIDs  map[string][]string // device -> workflow IDs that pushed it
	pushInfo   []activity.Info
	verifyInfo []activity.Info
	verifyReqs []VerifyRequest

	pushCancelled int // blockPush calls that saw their context cancelled
}

func newFleet(ids ...string) *fleet {
	return &fleet{
		ids:        ids,
		pushes:     map[string]pushFn{},
		verifies:   map[string]verifyFn{},
		pushCalls:  map[string]int{},
		verifyCall: map[string]int{},
		pushWFIDs:  map[string][]string{},
	}
}

func (f *fleet) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(f.ListTargets, activity.RegisterOptions{Name: ListTargetsActivity})
	env.RegisterActivityWithOptions(f.PushFirmware, activity.RegisterOptions{Name: PushFirmwareActivity})
	env.RegisterActivityWithOptions(f.VerifyVersion, activity.RegisterOptions{Name: VerifyVersionActivity})
}

// ListTargets pages through the fleet in OrderKey order, strictly after
// the cursor, as the real activity does.
func (f *fleet) ListTargets(_ context.Context, req ListTargetsRequest) (TargetPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls = append(f.listCalls, req)
	if f.listErr != nil {
		return TargetPage{}, f.listErr
	}
	all := make([]Target, 0, len(f.ids))
	for _, id := range f.ids {
		all = append(all, Target{ID: id, Address: "http://devices.test/" + id, Key: OrderKey(req.RolloutID, id)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Key < all[j].Key })
	rest := all
	if req.After != "" {
		i := sort.Search(len(all), func(i int) bool { return all[i].Key > req.After })
		rest = all[i:]
	}
	page := TargetPage{Selected: len(all), Targets: rest}
	if req.Limit > 0 && len(rest) > req.Limit {
		page.Targets, page.More = rest[:req.Limit], true
	}
	return page, nil
}

func (f *fleet) PushFirmware(ctx context.Context, req PushRequest) (PushResult, error) {
	info := activity.GetInfo(ctx)
	f.mu.Lock()
	f.pushCalls[req.DeviceID]++
	f.pushWFIDs[req.DeviceID] = append(f.pushWFIDs[req.DeviceID], info.WorkflowExecution.ID)
	f.pushInfo = append(f.pushInfo, info)
	fn := f.pushes[req.DeviceID]
	if fn == nil {
		fn = f.defPush
	}
	f.mu.Unlock()
	if fn == nil {
		fn = pushOK
	}
	return fn(ctx, int(info.Attempt))
}

func (f *fleet) VerifyVersion(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	info := activity.GetInfo(ctx)
	f.mu.Lock()
	f.verifyCall[req.DeviceID]++
	f.verifyInfo = append(f.verifyInfo, info)
	f.verifyReqs = append(f.verifyReqs, req)
	fn := f.verifies[req.DeviceID]
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, req, int(info.Attempt))
	}
	return VerifyResult{Version: req.Version}, nil
}

func (f *fleet) pushCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pushCalls[id]
}

func (f *fleet) verifyCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verifyCall[id]
}

// pushedDevices lists the devices PushFirmware was called for, sorted.
func (f *fleet) pushedDevices() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.pushCalls {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// newTestEnv is a test environment whose logger is quiet unless
// TEST_WORKFLOW_LOG is set (activity errors are expected in most tests).
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	if os.Getenv("TEST_WORKFLOW_LOG") == "" {
		s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	}
	return s.NewTestWorkflowEnvironment()
}

// newRolloutEnv is a test environment with the workflows and the fleet's
// activities registered, starting FirmwareRollout under the spec's ID.
func newRolloutEnv(t *testing.T, f *fleet, spec Spec) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newTestEnv()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&childRunTimeout{}}})
	env.SetTestTimeout(30 * time.Second)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: spec.ID, TaskQueue: TaskQueue})
	Register(env)
	f.register(env)
	return env
}

// childRunTimeout works around a test-environment quirk: it caps an
// activity's heartbeat timeout at its schedule-to-close timeout, which it
// takes from the workflow run timeout, 0 for children started without one
// (a real server reads 0 as "no limit"). Without a run timeout the device
// activities would get no heartbeat timeout at all, so heartbeats would be
// throttled to 30s and a cancelled push would not learn of it in time.
type childRunTimeout struct {
	interceptor.WorkerInterceptorBase
}

func (*childRunTimeout) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &childRunTimeoutInbound{interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type childRunTimeoutInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *childRunTimeoutInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&childRunTimeoutOutbound{interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type childRunTimeoutOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *childRunTimeoutOutbound) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	return o.Next.ExecuteChildWorkflow(workflow.WithWorkflowRunTimeout(ctx, 24*time.Hour), childWorkflowType, args...)
}

// runRollout runs a rollout to its end and returns its report; it fails
// the test if the workflow fails.
func runRollout(t *testing.T, f *fleet, spec Spec) Report {
	t.Helper()
	env := newRolloutEnv(t, f, spec)
	env.ExecuteWorkflow(FirmwareRollout, spec, (*Checkpoint)(nil))
	return rolloutResult(t, env)
}

func rolloutResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) Report {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted(), "the rollout did not complete")
	require.NoError(t, env.GetWorkflowError())
	var rep Report
	require.NoError(t, env.GetWorkflowResult(&rep))
	return rep
}

func queryProgress(t *testing.T, env *testsuite.TestWorkflowEnvironment) Report {
	t.Helper()
	v, err := env.QueryWorkflow(ProgressQuery)
	require.NoError(t, err)
	var rep Report
	require.NoError(t, v.Get(&rep))
	return rep
}

// updateResult collects what an update's callbacks reported.
type updateResult struct {
	accepted bool
	rejected error
	report   Report
	err      error
	done     bool
}

// sendUpdate sends an update; its outcome lands in the returned struct
// once the test environment has processed it.
func sendUpdate(env *testsuite.TestWorkflowEnvironment, name string, args ...any) *updateResult {
	res := &updateResult{}
	env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() { res.accepted = true },
		OnReject: func(err error) { res.rejected = err },
		OnComplete: func(v any, err error) {
			res.done = true
			res.err = err
			if r, ok := v.(Report); ok {
				res.report = r
			}
		},
	}, args...)
	return res
}

// checkInvariants asserts what must hold for any progress answer.
func checkInvariants(t *testing.T, rep Report, spec Spec) {
	t.Helper()
	require.Equal(t, spec.ID, rep.RolloutID)
	require.Equal(t, spec.Firmware.Version, rep.Version)
	require.GreaterOrEqual(t, rep.Running, 0)
	require.LessOrEqual(t, rep.Running, spec.Concurrency(), "more devices running than maxConcurrent")
	require.LessOrEqual(t, rep.Started, rep.Selected)
	if rep.Status.Ended() {
		require.Equal(t, 0, rep.Running)
		require.Equal(t, rep.Selected, rep.Counts.Done(), "every selected device has exactly one outcome: %+v", rep.Counts)
	} else {
		// Until the end, only started devices have an outcome.
		require.Equal(t, rep.Started-rep.Running, rep.Counts.Done(), "finished devices = started - running: %+v", rep)
	}
	require.LessOrEqual(t, len(rep.Failures), MaxListedFailures)
	require.LessOrEqual(t, len(rep.Failures), rep.Counts.Failed)
}

func failureFor(rep Report, id string) (DeviceFailure, bool) {
	for _, f := range rep.Failures {
		if f.DeviceID == id {
			return f, true
		}
	}
	return DeviceFailure{}, false
}
