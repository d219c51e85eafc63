package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start a rollout (flags override the fields of --spec)",
		UsageText: "starter start --id ID --inventory SRC --firmware SRC --version V [options]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "rollout `ID` (also the workflow ID)"},
			&cli.StringFlag{Name: "inventory", Usage: "fleet inventory: a path, file:// or http(s):// `SRC`"},
			&cli.StringFlag{Name: "firmware", Usage: "firmware image: a path, file:// or http(s):// `SRC` readable by the workers"},
			&cli.StringFlag{Name: "version", Usage: "firmware `VERSION` the devices must end on"},
			&cli.StringFlag{Name: "sha256", Usage: "image digest as 64 `HEX` digits (computed from the image when omitted)"},
			&cli.IntFlag{Name: "max-concurrent", Usage: fmt.Sprintf("devices updated at once (default %d)", workflows.DefaultMaxConcurrent)},
			&cli.StringSliceFlag{Name: "tag", Usage: "select devices whose metadata has `KEY=VALUE` (repeatable)"},
			&cli.StringSliceFlag{Name: "device", Usage: "select the device with this `ID` (repeatable)"},
			&cli.StringSliceFlag{Name: "status", Usage: "select devices with this inventory `STATUS` (repeatable)"},
			&cli.StringSliceFlag{Name: "has-tag", Usage: "select devices whose metadata has the `KEY`, any value (repeatable)"},
			&cli.StringFlag{Name: "version-below", Usage: "select devices running a semantic version below `V`"},
			&cli.StringFlag{Name: "version-at-least", Usage: "select devices running semantic version `V` or later"},
			&cli.StringFlag{Name: "location", Usage: "select devices whose location matches the `GLOB` (case-insensitive, e.g. \"*, NY\")"},
			&cli.StringFlag{Name: "spec", Usage: "rollout spec JSON `FILE` (see README)"},
			&cli.BoolFlag{Name: "wait", Usage: "watch the rollout until it ends; exit code says how it ended"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the spec and show the selected devices without starting"},
		}, signingFlags()...),
		OnUsageError: usageError,
		Action:       startRollout,
	}
}

func startRollout(c *cli.Context) error {
	if c.NArg() > 0 {
		return badInput("start takes no arguments, got %q", c.Args().Slice())
	}
	spec, err := buildSpec(c)
	if err != nil {
		return badInput("%v", err)
	}
	devices, err := activities.LoadInventory(c.Context, activities.NewHTTPClient(nil), spec.Inventory)
	if err != nil {
		return badInput("--inventory: %v", err)
	}
	targets := activities.SelectTargets(devices, spec.ID, spec.Selector)
	if len(targets) == 0 {
		return badInput("the selector matched none of the %d devices in %s", len(devices), spec.Inventory)
	}
	if c.Bool("dry-run") {
		printPlan(c, spec, targets, len(devices))
		return nil
	}

	cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return failed("%v", err)
	}
	defer cl.Close()
	_, err = cl.ExecuteWorkflow(c.Context, client.StartWorkflowOptions{
		ID:                       spec.ID,
		TaskQueue:                c.String("task-queue"),
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK quietly returns the existing rollout.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// RolloutStatus is the workflow's to set, from its first task on.
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.RolloutIDAttr.ValueSet(spec.ID),
			workflows.FirmwareVersionAttr.ValueSet(spec.Firmware.Version),
		),
	}, workflows.FirmwareRolloutWorkflow, spec)
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &exists) {
		return badInput("rollout %s already exists; see it with: starter status %s", spec.ID, spec.ID)
	}
	if err != nil {
		return failed("starting rollout %s: %v", spec.ID, err)
	}
	fmt.Fprintf(c.App.Writer, "started rollout %s: firmware %s to %d devices, %d at a time\n",
		spec.ID, spec.Firmware.Version, len(targets), spec.Concurrency())
	if !c.Bool("wait") {
		fmt.Fprintf(c.App.Writer, "watch it with: starter watch %s\n", spec.ID)
		return nil
	}
	return watch(c, cl, spec.ID)
}

func printPlan(c *cli.Context, spec workflows.Spec, targets []workflows.Target, inventorySize int) {
	w := c.App.Writer
	fmt.Fprintf(w, "rollout %s (dry run, nothing started)\n", spec.ID)
	fmt.Fprintf(w, "  firmware   %s  sha256 %s  %d bytes\n", spec.Firmware.Version, spec.Firmware.SHA256, spec.Firmware.Size)
	if spec.Firmware.Signature != "" {
		fmt.Fprintf(w, "  signature  %s\n", spec.Firmware.Signature)
	}
	fmt.Fprintf(w, "  selected   %d of %d devices, %d at a time\n", len(targets), inventorySize, spec.Concurrency())
	if spec.StartAt != "" {
		fmt.Fprintf(w, "  starts at  %s\n", spec.StartAt)
	}
	if win := spec.Window; win != nil {
		days := "every day"
		if len(win.Days) > 0 {
			days = strings.Join(win.Days, ",")
		}
		fmt.Fprintf(w, "  window     %s for %s, %s, %s\n", win.Start, win.Duration, win.Timezone, days)
	}
	if rate := spec.Rate; rate != nil {
		fmt.Fprintf(w, "  rate       %g devices/min", rate.PerMinute)
		if rate.RampFactor > 1 {
			fmt.Fprintf(w, ", x%g every %d successes", rate.RampFactor, rate.RampEvery)
		}
		if rate.MaxPerMinute > 0 {
			fmt.Fprintf(w, ", at most %g/min", rate.MaxPerMinute)
		}
		fmt.Fprintln(w)
	}
	if a := spec.Abort; a != nil {
		fmt.Fprintf(w, "  abort      above %g%% failed devices (checked once %d have finished)\n", a.MaxFailurePercent, a.MinFinished())
	}
	phases, ends := spec.PhasePlan(len(targets))
	prev := 0
	for i, p := range phases {
		fmt.Fprintf(w, "  phase %-12s %d devices (%s)\n", p.Name, ends[i]-prev, phaseRules(p))
		for _, t := range targets[prev:min(ends[i], prev+10)] {
			fmt.Fprintf(w, "      %s  %s\n", t.ID, t.Address)
		}
		if more := ends[i] - prev - 10; more > 0 {
			fmt.Fprintf(w, "      ... and %d more\n", more)
		}
		prev = ends[i]
	}
}

// phaseRules summarises what a phase waits for.
func phaseRules(p workflows.Phase) string {
	rules := []string{fmt.Sprintf("to %g%%", p.Percent)}
	if p.RequireApproval {
		rules = append(rules, "needs approval")
	}
	if p.MinSuccessPercent > 0 {
		rules = append(rules, fmt.Sprintf("gate %g%% success", p.MinSuccessPercent))
	}
	if p.Soak != "" {
		rules = append(rules, "soak "+p.Soak)
	}
	return strings.Join(rules, ", ")
}
