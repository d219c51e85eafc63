// Command healthcheck exits 0 when a URL answers 2xx, 1 otherwise: the
// health check of the container image, which has no shell and no curl.
// Compose runs it as `healthcheck http://127.0.0.1:8081/healthz`.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

const (
	exitUnhealthy = 1
	exitUsage     = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	timeout := flags.Duration("timeout", 5*time.Second, "give up after `DUR`")
	if err := flags.Parse(args); err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err, "(usage: healthcheck [--timeout DUR] URL)")
		return exitUsage
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "healthcheck: want one URL (usage: healthcheck [--timeout DUR] URL)")
		return exitUsage
	}
	target, err := url.Parse(flags.Arg(0))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		fmt.Fprintf(stderr, "healthcheck: %q is not an http(s) URL\n", flags.Arg(0))
		return exitUsage
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(target.String())
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return exitUnhealthy
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s\n", target.Redacted(), resp.Status)
		return exitUnhealthy
	}
	return 0
}
