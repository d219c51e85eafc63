package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestNoResumeFlag(t *testing.T) {
	for args, want := range map[string]bool{"": false, "--no-resume": true} {
		var got bool
		app := &cli.App{Flags: flags(), Action: func(c *cli.Context) error {
			cfg, err := configFromFlags(c)
			got = cfg.NoResume
			return err
		}}
		if err := app.Run(append([]string{"devicemock"}, strings.Fields(args)...)); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if got != want {
			t.Errorf("%q: Config.NoResume = %v, want %v", args, got, want)
		}
	}
}
