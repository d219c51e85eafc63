// Command starter starts, watches and controls firmware rollouts.
//
// Exit codes: 0 the rollout (or command) succeeded; 1 it ended with failed
// devices, was cancelled, or a command was refused; 2 bad input or usage,
// nothing started.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	// Maintenance windows name IANA time zones; embed the database so a
	// minimal container image resolves them like any other host.
	_ "time/tzdata"

	"github.com/dovaclean/go-update-orchestrator/worker/connection"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, flagsFirst(args, app))
	if err == nil {
		return 0
	}
	var exit cli.ExitCoder
	if errors.As(err, &exit) {
		if msg := exit.Error(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
		return exit.ExitCode()
	}
	fmt.Fprintln(stderr, "starter: "+err.Error())
	return 1
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "starter",
		Usage:           "start, watch and control firmware rollouts",
		Writer:          stdout,
		ErrWriter:       stderr,
		Flags:           connection.Flags(),
		Before:          checkConnection,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // run() prints and exits
		OnUsageError:    usageError,
		Commands: []*cli.Command{
			startCommand(),
			statusCommand(),
			watchCommand(),
			controlCommand("pause", "stop starting devices; running ones finish"),
			controlCommand("resume", "continue a paused rollout, or override the failed gate of a halted one"),
			controlCommand("approve", "let a phase that requires approval start"),
			cancelCommand(),
			checkinCommand(),
			rollbackCommand(),
			listCommand(),
			keygenCommand(),
			signCommand(),
		},
	}
}

// checkConnection refuses bad connection settings (a certificate without
// its key, an unreadable file) before any command runs.
func checkConnection(c *cli.Context) error {
	if _, err := connection.Options(c); err != nil {
		return badInput("%v", err)
	}
	return nil
}

// usageError makes every usage problem (unknown flag, missing argument)
// exit 2 with one line.
func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag --" + strings.TrimPrefix(name, "-")
		if c.Command != nil && c.Command.Name != "" {
			msg += " for " + c.Command.Name + " (see: starter " + c.Command.Name + " --help)"
		}
	}
	return badInput("%s", msg)
}

func badInput(format string, args ...any) error {
	return cli.Exit("starter: "+fmt.Sprintf(format, args...), 2)
}

func failed(format string, args ...any) error {
	return cli.Exit("starter: "+fmt.Sprintf(format, args...), 1)
}

// rolloutID is the single ID argument of status, watch and the controls.
func rolloutID(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", badInput("%s needs exactly one rollout ID, got %d arguments", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}
