// Command devicemock serves a simulated fleet of firmware-updatable devices
// for tests and demos; the simulation itself lives in package fleet.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dovaclean/go-update-orchestrator/activities/signing"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
)

const (
	exitFailure = 1 // could not serve (listen failed, inventory not written)
	exitUsage   = 2 // bad flags or fleet file; nothing was started

	shutdownGrace = 5 * time.Second

	// Server limits. No read or write timeout bounds a whole request: a
	// bandwidth-capped upload may take hours. The fleet gives each read of
	// an upload body its own deadline instead.
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the process exit code. Errors go to
// stderr as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:  "devicemock",
		Usage: "simulate a fleet of devices speaking the firmware update protocol",
		UsageText: "devicemock [--listen HOST:PORT] [--devices N] [--version V] [--inventory-out FILE]\n" +
			"           [--fleet FILE] [--seed N] [--token T] [--reboot DUR] [--latency DUR]\n" +
			"           [--bandwidth BYTES_PER_S] [--fail-5xx R] [--fail-4xx R] [--offline R]\n" +
			"           [--drop R] [--wrong-version R] [--fail-429 R] [--no-resume] [--online-after DUR]\n" +
			"           [--checkin URL] [--require-signature] [--firmware-public-key FILE ...]\n" +
			"           [--max-image BYTES] [--tls-cert FILE --tls-key FILE [--client-ca FILE]]",
		HideHelpCommand: true,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideVersion:     true, // --version is the fleet's firmware version, not ours
		Flags:           flags(),
		Action: func(c *cli.Context) error {
			return serve(c, stdout)
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cli.Exit(flagParseMessage(err), exitUsage)
		},
		// Report errors here instead of letting cli call os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "devicemock:", err)
	if coder, ok := errors.AsType[cli.ExitCoder](err); ok {
		return coder.ExitCode()
	}
	return exitUsage
}

// flagParseMessage rewords the standard flag package's errors to spell flags
// the way they are documented, with two dashes.
func flagParseMessage(err error) string {
	msg := strings.Replace(err.Error(), "flag provided but not defined: -", "unknown flag --", 1)
	return strings.Replace(msg, "for flag -", "for flag --", 1)
}

func flags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9000", Usage: "serve on `HOST:PORT` (port 0 picks a free one; the line on stdout tells which)"},
		&cli.IntFlag{Name: "devices", Value: 10, Usage: "simulate `N` devices dev-00001... (not with --fleet)"},
		&cli.StringFlag{Name: "version", Value: "1.0.0", Usage: "firmware version `V` the devices start on (not with --fleet)"},
		&cli.StringFlag{Name: "inventory-out", Usage: "write the inventory JSON to `FILE` once listening"},
		&cli.StringFlag{Name: "fleet", Usage: "simulate the devices of inventory `FILE` (ids, versions, metadata; status \"offline\" never answers)"},
		&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed `N` choosing which devices get each fault; same seed, same devices"},
		&cli.StringFlag{Name: "token", Usage: "require \"Authorization: Bearer `T`\" on uploads (401 otherwise)"},
		&cli.DurationFlag{Name: "reboot", Value: time.Second, Usage: "install and reboot time `DUR` after an accepted upload (version and health answer 503 meanwhile)"},
		&cli.DurationFlag{Name: "latency", Usage: "delay `DUR` before every device request is answered"},
		&cli.Int64Flag{Name: "bandwidth", Usage: "cap each upload at `BYTES_PER_S` (0 = unlimited)"},
		&cli.Float64Flag{Name: "fail-5xx", Usage: "share `R` (0..1) of devices answering 503 to their first two uploads"},
		&cli.Float64Flag{Name: "fail-4xx", Usage: "share `R` (0..1) of devices refusing every upload with 403"},
		&cli.Float64Flag{Name: "offline", Usage: "share `R` (0..1) of devices that never answer (connection closed, no reply)"},
		&cli.Float64Flag{Name: "drop", Usage: "share `R` (0..1) of devices cutting their first upload mid-stream"},
		&cli.Float64Flag{Name: "wrong-version", Usage: "share `R` (0..1) of devices accepting uploads but rebooting into their previous version"},
		&cli.Float64Flag{Name: "fail-429", Usage: "share `R` (0..1) of devices that answer their first upload 429 with Retry-After: 2, then work"},
		&cli.DurationFlag{Name: "online-after", Usage: "offline devices come back `DUR` after start (0: never)"},
		&cli.StringFlag{Name: "checkin", Usage: "devices that come back POST `URL`/<id> (the worker's --checkin-listen endpoint + /checkin)"},
		&cli.BoolFlag{Name: "no-resume", Usage: "devices predate resumable uploads: HEAD /update answers 405, Upload-Offset is ignored, cut uploads leave nothing"},
		&cli.BoolFlag{Name: "require-signature", Usage: "devices refuse uploads without X-Firmware-Signature with 403"},
		&cli.StringSliceFlag{Name: "firmware-public-key", Usage: "devices verify X-Firmware-Signature over the received image with the ed25519 PEM public key `FILE` (repeatable; 422 when it does not verify; implies --require-signature)"},
		&cli.Int64Flag{Name: "max-image", Value: fleet.DefaultMaxImage, Usage: "refuse uploads of images larger than `BYTES` with 413"},
	}, tlsFlags()...)
}

func serve(c *cli.Context, stdout io.Writer) error {
	cfg, err := configFromFlags(c)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	f, err := fleet.New(cfg)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	tlsConfig, err := serverTLS(c)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	listen := c.String("listen")
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return cli.Exit(fmt.Errorf("--listen %q: %w", listen, err), exitUsage)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return cli.Exit(fmt.Errorf("--listen %s: %w", listen, err), exitFailure)
	}
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	base := scheme + dialableAddr(ln.Addr())
	if path := c.String("inventory-out"); path != "" {
		if err := writeInventory(path, f.Inventory(base)); err != nil {
			ln.Close()
			return cli.Exit(fmt.Errorf("--inventory-out: %w", err), exitFailure)
		}
	}
	fmt.Fprintf(stdout, "devicemock: %d devices on %s (inventory %s/_fleet/inventory)\n", f.Len(), base, base)

	if url := c.String("checkin"); url != "" {
		go func() {
			n := f.CheckInWhenOnline(c.Context, http.DefaultClient, url)
			fmt.Fprintf(stdout, "devicemock: %d offline devices came back and checked in\n", n)
		}()
	}
	srv := &http.Server{Handler: f.Handler(), TLSConfig: tlsConfig, MaxHeaderBytes: maxHeaderBytes,
		ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()
	select {
	case err := <-served:
		return cli.Exit(err, exitFailure)
	case <-c.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if srv.Shutdown(shutdownCtx) != nil {
		// Uploads still running after the grace period are cut.
		srv.Close()
	}
	return nil
}

func configFromFlags(c *cli.Context) (fleet.Config, error) {
	if c.NArg() > 0 {
		return fleet.Config{}, fmt.Errorf("unexpected argument %q (devicemock takes only flags)", c.Args().First())
	}
	cfg := fleet.Config{
		Devices:      c.Int("devices"),
		Version:      c.String("version"),
		Seed:         c.Int64("seed"),
		Token:        c.String("token"),
		Reboot:       c.Duration("reboot"),
		Latency:      c.Duration("latency"),
		Bandwidth:    c.Int64("bandwidth"),
		Fail5xx:      c.Float64("fail-5xx"),
		Fail4xx:      c.Float64("fail-4xx"),
		Offline:      c.Float64("offline"),
		Drop:         c.Float64("drop"),
		WrongVersion: c.Float64("wrong-version"),
		Busy:         c.Float64("fail-429"),
		MaxImage:     c.Int64("max-image"),
	}
	if cfg.MaxImage < 1 {
		return fleet.Config{}, fmt.Errorf("--max-image must be at least 1 byte, got %d", cfg.MaxImage)
	}
	cfg.NoResume = c.Bool("no-resume")
	cfg.RequireSignature = c.Bool("require-signature")
	if paths := c.StringSlice("firmware-public-key"); len(paths) > 0 {
		keys, err := signing.LoadPublicKeys(paths)
		if err != nil {
			return fleet.Config{}, fmt.Errorf("--firmware-public-key: %w", err)
		}
		cfg.FirmwareKeys = keys
	}
	cfg.OnlineAfter = c.Duration("online-after")
	if c.IsSet("checkin") && cfg.OnlineAfter <= 0 {
		return fleet.Config{}, fmt.Errorf("--checkin needs --online-after: devices check in when they come back")
	}
	if cfg.OnlineAfter < 0 {
		return fleet.Config{}, fmt.Errorf("--online-after must not be negative, got %s", cfg.OnlineAfter)
	}
	if path := c.String("fleet"); path != "" {
		for _, name := range []string{"devices", "version"} {
			if c.IsSet(name) {
				return fleet.Config{}, fmt.Errorf("--%s cannot be combined with --fleet, which lists the devices and their versions", name)
			}
		}
		inventory, err := fleet.LoadInventory(path)
		if err != nil {
			return fleet.Config{}, fmt.Errorf("--fleet: %w", err)
		}
		cfg.Inventory = inventory
	}
	return cfg, nil
}

// dialableAddr is addr as a client can dial it: a wildcard host such as
// 0.0.0.0 or [::] becomes the loopback address.
func dialableAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

func writeInventory(path string, devices []fleet.Device) error {
	data, err := json.MarshalIndent(devices, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
