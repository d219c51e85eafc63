package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves a command's flags before its arguments, so that
// `starter status ID --json` works: urfave/cli v2 stops reading flags at
// the first argument.
func flagsFirst(args []string, app *cli.App) []string {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") { // global flags
		i += flagWidth(args[i], app.Flags)
	}
	if i >= len(args) {
		return args
	}
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.Name == args[i] || slices.Contains(c.Aliases, args[i]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	out := slices.Clone(args[:i+1])
	var positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			positional = append(positional, rest[j:]...)
			j = len(rest)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			w := min(flagWidth(a, cmd.Flags), len(rest)-j)
			out = append(out, rest[j:j+w]...)
			j += w - 1
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...)
}

// flagWidth is how many arguments a flag takes up: 2 when its value
// follows as the next argument, else 1.
func flagWidth(arg string, flags []cli.Flag) int {
	if strings.Contains(arg, "=") {
		return 1
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); isBool {
			return 1
		}
		return 2
	}
	return 1
}
