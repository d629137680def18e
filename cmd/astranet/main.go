// Command astranet is astranet's command line. It shows what the library does
// and runs it without writing Go:
//
//	astranet demo    two nodes in one process: 10,000 echo streams, then
//	                 100,000 idle streams, over a single link
//	astranet node    run a node: accept and join links, expose local TCP
//	                 services under a name, forward local ports to services
//	astranet bench   astranet against raw TCP on this machine
//
// Results go to stdout; logs (hclog, Warn unless -v) and progress go to
// stderr. Addresses are written network://host:port, with network one of
// tcp, tcp4, tcp6 or quic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its name, a line for the usage, and its body.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands returns the subcommands in the order the usage lists them. It is a
// function rather than a variable so that "help" can refer to the list.
func commands() []command {
	return []command{
		{"demo", "two nodes in one process: many echo streams, then many idle streams, over one link", runDemo},
		{"node", "run a node: accept and join links, expose and forward services", runNode},
		{"bench", "astranet against raw TCP on this machine: bulk, round trip, stream opens", runBench},
		{"help", "this text, or a command's flags: astranet help <command>", runHelp},
	}
}

// run is the whole program minus os.Exit, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is run with a context whose end stops a running node.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stderr)
		return 2
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		return runHelp(ctx, nil, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "astranet: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "astranet carries many independent streams over a few links between nodes.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	fmt.Fprintln(w, "  astranet <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Addresses are network://host:port, network one of tcp, tcp4, tcp6, quic.")
	fmt.Fprintln(w, "Run 'astranet <command> -h' for a command's flags.")
}

func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			return c.run(ctx, []string{"-h"}, stdout, stdout)
		}
	}
	fmt.Fprintf(stderr, "astranet help: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet returns a flag set for command name whose usage prints synopsis
// and every flag not listed in hidden.
func newFlagSet(name, synopsis string, stderr io.Writer, hidden ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: astranet %s %s\n\nFlags:\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			for _, h := range hidden {
				if f.Name == h {
					return
				}
			}
			arg, text := flag.UnquoteUsage(f)
			fmt.Fprintf(fs.Output(), "  %s\n    \t%s", strings.TrimSpace("-"+f.Name+" "+arg), strings.ReplaceAll(text, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				fmt.Fprintf(fs.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	return fs
}

// parseFlags parses args into fs. done is true when the command should stop
// at once with code: 0 after -h, 2 after a bad flag or stray argument.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		return 2, true // flag has printed the error and the usage
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "astranet %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}

// newLogger returns the logger every node of a command shares: Warn and
// above on stderr, or Debug with -v.
func newLogger(stderr io.Writer, verbose bool) hclog.Logger {
	level := hclog.Warn
	if verbose {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Level: level, Output: stderr})
}
