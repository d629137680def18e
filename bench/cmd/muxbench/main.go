// Command muxbench compares stream multiplexers side by side on loopback:
// raw TCP, hashicorp/yamux, xtaci/smux, libp2p/go-yamux, quic-go and
// astranet.
//
//	muxbench run -lib yamux -workload bulk1   # one pair, one JSON line
//	muxbench all [-libs a,b] [-workloads x,y] [-quick] [-runs 3] [-json FILE]
//	muxbench table FILE                       # the table again from saved results
//
// "all" runs every (library, workload) pair in a fresh child process, so
// garbage and goroutines never leak from one measurement into the next, and
// prints a Markdown table.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "all":
		err = cmdAll(os.Args[2:])
	case "table":
		err = cmdTable(os.Args[2:])
	case "list":
		fmt.Println("libraries:", strings.Join(availableLibs(), " "))
		var names []string
		for _, w := range workloads {
			names = append(names, w.Name)
		}
		fmt.Println("workloads:", strings.Join(names, " "))
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "muxbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  muxbench run -lib L -workload W [-quick] [-sizes JSON] [-timeout D]
  muxbench all [-libs L,...] [-workloads W,...] [-quick] [-sizes JSON] [-json FILE]
  muxbench table FILE...    (print the table again from all -json files)
  muxbench list`)
	os.Exit(2)
}

// sizesFor returns the sizes for a run: defaults or quick ones, with the
// fields named in the JSON object overrides replaced.
func sizesFor(quick bool, overrides string) (Sizes, error) {
	sz := defaultSizes()
	if quick {
		sz = quickSizes()
	}
	if overrides != "" {
		dec := json.NewDecoder(strings.NewReader(overrides))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sz); err != nil {
			return sz, fmt.Errorf("-sizes: %w", err)
		}
	}
	return sz, nil
}

// cmdRun runs one (library, workload) pair and prints one JSON line.
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	libName := fs.String("lib", "", "library: "+strings.Join(availableLibs(), ", "))
	wlName := fs.String("workload", "", "workload (see muxbench list)")
	quick := fs.Bool("quick", false, "small sizes for a smoke run")
	overrides := fs.String("sizes", "", `JSON object overriding sizes, e.g. {"IdleBigN":300000}`)
	timeout := fs.Duration("timeout", 0, "give up after this long (default: the workload's own)")
	fs.Parse(args)

	lib, ok := libs[*libName]
	if !ok {
		return fmt.Errorf("unknown library %q (have %s)", *libName, strings.Join(availableLibs(), ", "))
	}
	w, ok := findWorkload(*wlName)
	if !ok {
		return fmt.Errorf("unknown workload %q", *wlName)
	}
	sz, err := sizesFor(*quick, *overrides)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		*timeout = w.Timeout
	}
	raiseFileLimit()

	res := Result{Lib: lib.Name(), Workload: w.Name}
	start := time.Now()
	// A workload that overruns its own deadline is reported, not waited for.
	watchdog := time.AfterFunc(*timeout, func() {
		res := Result{Lib: lib.Name(), Workload: w.Name, Timeout: true, Seconds: time.Since(start).Seconds()}
		printResult(res)
		os.Exit(3)
	})
	defer watchdog.Stop()

	// Workloads stop their own loops 10% (at least 10 s) before the watchdog.
	margin := max(*timeout/10, 10*time.Second)
	e := env{sz: sz, deadline: start.Add(*timeout - margin)}
	err = runGuarded(w, lib, e, &res)
	watchdog.Stop()
	if na, ok := err.(errNA); ok {
		res.NA = string(na)
	} else if err != nil {
		res.Error = err.Error()
	}
	res.Seconds = time.Since(start).Seconds()
	printResult(res)
	return nil
}

// runGuarded turns a panic in a workload or library into an error.
func runGuarded(w Workload, lib Lib, e env, r *Result) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	if lib.Name() == "astranet-quic" && !quicWorkloads[w.Name] {
		return errNA("measured on tcp4 only")
	}
	return w.Run(lib, e, r)
}

var printOnce sync.Once

// printResult prints r as the child's one JSON line; only the first call
// (the result or the watchdog's timeout) prints.
func printResult(r Result) {
	printOnce.Do(func() {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	})
}
