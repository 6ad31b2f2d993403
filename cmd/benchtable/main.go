// Command benchtable reads `go test -bench` output (the benchstat text format) and
// prints the iox benchmarks as the tables of the README's Performance section,
// with ratios against the baselines measured in the same run:
//
//   - a summary: the figures that matter most (summary.go's measures), each an
//     iox benchmark against its baseline of the same run (a Unix socket, or
//     net/rpc) and against the best of the kernel's paths (uds, seqpacket,
//     pipe), with p50 and p99 for latencies and, when several files are given,
//     each file's own ratio in brackets and, as the ratio, the median of those;
//   - BenchmarkRoundTrip/<case>: time per round trip, its p50 and p99 (the
//     p50-ns and p99-ns metrics), and that time relative to the uds row, the
//     fastest kernel path (uds, seqpacket, pipe) and the native floor (lower
//     is better), with allocs/op; ports and the pair rows are iox, the others
//     baselines;
//   - BenchmarkRoundTripLoaded/<case>: the same while another process keeps one
//     core busy, relative to the loaded uds row, the fastest loaded kernel path
//     and the unloaded native floor;
//   - BenchmarkThroughput/<case>/<size> at 64B, 4KiB and 1MiB: messages per
//     second, bytes per second, and the rate relative to the uds row and to the
//     fastest kernel path of the same size (higher is better), with allocs/op;
//     ports-copy, ports-zerocopy, pair, pair-zerocopy and pubsub are iox, chan
//     is Go channels within one process;
//   - the cases of BenchmarkThroughput measured at many sizes (64 B to 4 MiB):
//     bytes per second by size, and iox's against the fastest kernel path; with
//     -plot FILE, also drawn on log axes, as SVG (or PNG for a FILE ending in
//     .png);
//   - BenchmarkFanout/<case>/<size>: one publisher to four readers, as the
//     throughput table;
//   - BenchmarkIdleCPU/<case> and BenchmarkIdlePairs: the CPU time of this process
//     and of its peer process over an idle window as a percentage of one core,
//     and their context switches per second (the cpu%-self, cpu%-peer,
//     csw/s-self and csw/s-peer metrics), and goroutines per idle pair;
//   - BenchmarkOpenPair/<fs> and BenchmarkCrashDetect: time per open and from a
//     peer's SIGKILL to Done, with p50 and p99.
//
// Other benchmarks are listed as they are. Parsing, unit handling and statistics
// are golang.org/x/perf's (benchfmt, benchunit, benchmath), as in benchstat: when
// a benchmark appears several times (-count, or several files), each metric is
// summarised by the median of its values, and times and rates carry the 95%
// confidence interval of that median (± ∞ below the number of runs that
// interval needs). The detailed tables' ratios are ratios of those medians; the
// summary's ratio over several files is the median of the files' own ratios.
//
// Usage:
//
//	benchtable [-plot FILE] [FILE...]
//
// With no FILE, or for a FILE that is -, it reads standard input; the results of
// several files are pooled, as the runs of one benchmark. It exits with status 1
// when the input holds no benchmark results or reports a failure (a FAIL line or a
// panic), after printing what it could.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command with its arguments and streams; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	plotFile := flags.String("plot", "", "")
	bad := flags.Parse(args) != nil
	args = flags.Args()
	for _, a := range args {
		bad = bad || len(a) > 1 && strings.HasPrefix(a, "-")
	}
	if bad {
		fmt.Fprintln(stderr, "usage: benchtable [-plot FILE] [FILE...]")
		return 2
	}
	if len(args) == 0 {
		args = []string{"-"}
	}
	set := newResults()
	for _, path := range args {
		if err := readPath(set, path, stdin); err != nil {
			fmt.Fprintln(stderr, "benchtable:", err)
			return 1
		}
	}
	write(stdout, set)
	status := 0
	if *plotFile != "" {
		if err := savePlot(*plotFile, set); err != nil {
			fmt.Fprintln(stderr, "benchtable: plot:", err)
			status = 1
		}
	}
	for _, err := range set.malformed {
		fmt.Fprintln(stderr, "benchtable: skipped", err)
	}
	switch {
	case len(set.failures) > 0:
		fmt.Fprintf(stderr, "benchtable: the run reported failures:\n  %s\n", strings.Join(set.failures, "\n  "))
		return 1
	case len(set.order) == 0:
		fmt.Fprintln(stderr, "benchtable: no benchmark results in the input")
		return 1
	}
	return status
}

// savePlot writes the throughput plot of set to path; path is left alone when
// the plot cannot be drawn.
func savePlot(path string, set *results) error {
	var buf bytes.Buffer
	format := "svg"
	if strings.HasSuffix(path, ".png") {
		format = "png"
	}
	if err := writePlot(&buf, sweepOf(set), set.cpu, format); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// readPath adds the results of one file, or of stdin for "-".
func readPath(set *results, path string, stdin io.Reader) error {
	if path == "-" {
		return set.read(stdin, "stdin")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return set.read(f, path)
}
