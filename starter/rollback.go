package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "push the previous image to every device an ended rollout updated (rollout ID-rollback)",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "firmware", Usage: "previous image `SRC` (default: the rollout spec's rollback.firmware)"},
			&cli.StringFlag{Name: "version", Usage: "previous firmware `VERSION`"},
			&cli.StringFlag{Name: "sha256", Usage: "previous image digest as 64 `HEX` digits (computed when omitted)"},
			&cli.StringFlag{Name: "signature", Usage: "previous image's firmware.signature `B64`, for workers with --firmware-public-key"},
			&cli.IntFlag{Name: "max-concurrent", Usage: "devices rolled back at once (default: the rollout's)"},
			&cli.BoolFlag{Name: "wait", Usage: "watch the rollback until it ends"},
		},
		OnUsageError: usageError,
		Action:       startRollback,
	}
}

func startRollback(c *cli.Context) error {
	id, err := rolloutID(c)
	if err != nil {
		return err
	}
	cl, err := connection.Dial(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return failed("%v", err)
	}
	defer cl.Close()

	original, report, err := endedRollout(c, cl, id)
	if err != nil {
		return err
	}
	spec, err := rollbackSpec(c, original, report)
	if err != nil {
		return badInput("%v", err)
	}
	if report.Counts.Succeeded == 0 {
		return badInput("rollout %s updated no device: there is nothing to roll back", id)
	}
	_, err = cl.ExecuteWorkflow(c.Context, client.StartWorkflowOptions{
		ID:                                       spec.ID,
		TaskQueue:                                c.String("task-queue"),
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.FirmwareRolloutWorkflow, spec)
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &exists) {
		return badInput("rollout %s was already rolled back by %s; see it with: starter status %s", id, spec.ID, spec.ID)
	}
	if err != nil {
		return failed("starting rollback %s: %v", spec.ID, err)
	}
	fmt.Fprintf(c.App.Writer, "started rollback %s: firmware %s to the %d devices %s updated\n",
		spec.ID, spec.Firmware.Version, report.Counts.Succeeded, id)
	if !c.Bool("wait") {
		fmt.Fprintf(c.App.Writer, "watch it with: starter watch %s\n", spec.ID)
		return nil
	}
	return watch(c, cl, spec.ID)
}

// endedRollout reads a rollout's spec (the input of its first run) and
// its final report.
func endedRollout(c *cli.Context, cl client.Client, id string) (workflows.Spec, workflows.Report, error) {
	var spec workflows.Spec
	var report workflows.Report
	desc, err := cl.DescribeWorkflow(c.Context, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return spec, report, badInput("no rollout %s (list them with: starter list)", id)
	}
	if err != nil {
		return spec, report, failed("describing rollout %s: %v", id, err)
	}
	if desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return spec, report, badInput("rollout %s is still running: cancel it first (starter cancel %s)", id, id)
	}
	if err := cl.GetWorkflow(c.Context, id, "").Get(c.Context, &report); err != nil {
		return spec, report, rolloutError(id, err)
	}
	// The spec is the same in every run; the last run's input has it.
	events := cl.GetWorkflowHistory(c.Context, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if events.HasNext() {
		e, err := events.Next()
		if err != nil {
			return spec, report, failed("reading rollout %s: %v", id, err)
		}
		if started := e.GetWorkflowExecutionStartedEventAttributes(); started != nil {
			if err := payloads(c).FromPayloads(started.GetInput(), &spec); err != nil {
				return spec, report, failed("reading the spec of rollout %s: %v", id, err)
			}
		}
	}
	return spec, report, nil
}

// rollbackSpec builds the rollback from the flags, or from the rollout's
// rollback.firmware.
func rollbackSpec(c *cli.Context, original workflows.Spec, report workflows.Report) (workflows.Spec, error) {
	var fw workflows.Firmware
	switch {
	case c.IsSet("signature") && !c.IsSet("firmware"):
		return workflows.Spec{}, errors.New("--signature goes with --firmware: it signs that image")
	case c.IsSet("firmware"):
		fw = workflows.Firmware{URL: c.String("firmware"), Version: c.String("version"), SHA256: c.String("sha256"), Signature: c.String("signature")}
		if fw.Version == "" {
			return workflows.Spec{}, errors.New("--version is required with --firmware")
		}
		if err := resolveFirmware(c.Context, &fw); err != nil {
			return workflows.Spec{}, err
		}
	case original.Rollback != nil:
		fw = original.Rollback.Firmware
	default:
		return workflows.Spec{}, fmt.Errorf("rollout %s has no rollback.firmware in its spec: give --firmware and --version", original.ID)
	}
	original.Rollback = &workflows.Rollback{Firmware: fw}
	spec := original.RollbackSpec(report.Counts.Succeeded + report.Counts.AlreadyCurrent)
	if c.IsSet("max-concurrent") {
		spec.MaxConcurrent = c.Int("max-concurrent")
	}
	return spec, spec.Validate()
}

// payloads decodes history payloads as the starter's client does, with
// the codec when payloads are encrypted.
func payloads(c *cli.Context) converter.DataConverter {
	opts, err := connection.Options(c) // checked before any command ran
	if err != nil || opts.DataConverter == nil {
		return converter.GetDefaultDataConverter()
	}
	return opts.DataConverter
}
