package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdata/bench.txt is the output of one `make bench`; testdata/uds-count6.txt
// that of `go test -bench 'RoundTrip/uds' -benchtime 2000x -count 6`.
const (
	oneRun  = "testdata/bench.txt"
	sixRuns = "testdata/uds-count6.txt"
)

func load(t *testing.T, paths ...string) *results {
	t.Helper()
	s := newResults()
	for _, p := range paths {
		f, err := os.Open(p)
		require.NoError(t, err)
		require.NoError(t, s.read(f, p))
		f.Close()
	}
	require.Empty(t, s.malformed)
	require.Empty(t, s.failures)
	return s
}

// ns is a time in ns/op as benchfmt tidies it, in seconds.
func ns(v float64) float64 { return v * 1e-9 }

func byName[R any](t *testing.T, rows []R, name func(R) string, want string) R {
	t.Helper()
	for _, r := range rows {
		if name(r) == want {
			return r
		}
	}
	require.Failf(t, "row missing", "no row %q", want)
	panic("unreachable")
}

func TestRoundTripRatiosOfOneRun(t *testing.T) {
	s := load(t, oneRun)
	rows := roundTripRows(s, roundTrip)
	var names []string
	for _, r := range rows {
		names = append(names, r.name)
	}
	require.Equal(t, []string{"uds", "ports", "native-floor", "pair", "pair-sendrecv", "pair-spin"}, names)

	name := func(r roundTripRow) string { return r.name }
	uds := byName(t, rows, name, "uds")
	assert.InDelta(t, ns(15796), uds.time.Center, 1e-15)
	assert.InDelta(t, 1, uds.vsUDS, 1e-12)
	assert.InDelta(t, 15796.0/2811, uds.vsFloor, 1e-12)

	pair := byName(t, rows, name, "pair")
	assert.InDelta(t, ns(13157), pair.time.Center, 1e-15)
	assert.InDelta(t, ns(10653), pair.p50.Center, 1e-15)
	assert.InDelta(t, ns(64225), pair.p99.Center, 1e-15)
	assert.Equal(t, 1.0, pair.allocs.Center)
	assert.InDelta(t, 13157.0/15796, pair.vsUDS, 1e-12)
	assert.InDelta(t, 13157.0/2811, pair.vsFloor, 1e-12)

	ports := byName(t, rows, name, "ports")
	assert.False(t, ports.p50.ok, "ports reports no p50")
	assert.InDelta(t, 3757.0/15796, ports.vsUDS, 1e-12)

	// The loaded table compares with its own uds row and the unloaded floor.
	loaded := roundTripRows(s, roundTripLoaded)
	require.Len(t, loaded, 3)
	lp := byName(t, loaded, name, "pair")
	assert.InDelta(t, 51774.0/18360, lp.vsUDS, 1e-12)
	assert.InDelta(t, 51774.0/2811, lp.vsFloor, 1e-12)

	// One run gives no confidence interval, and the note says why.
	assert.Equal(t, "∞", uds.time.PctRangeString())
	assert.Contains(t, s.notes, "need >= 6 samples for confidence interval at level 0.95")
}

func TestThroughputRatiosOfOneRun(t *testing.T) {
	s := load(t, oneRun)
	rows := throughputRows(s)
	require.Len(t, rows, 18)
	var sizes []string
	for _, r := range rows {
		if len(sizes) == 0 || sizes[len(sizes)-1] != r.size {
			sizes = append(sizes, r.size)
		}
	}
	require.Equal(t, []string{"64B", "4KiB", "1MiB"}, sizes)

	name := func(r throughputRow) string { return r.name + "/" + r.size }
	pair := byName(t, rows, name, "pair/64B")
	assert.InDelta(t, 1e9/469.5, pair.rate.Center, 1e-6)
	assert.InDelta(t, 136.31e6, pair.bytes.Center, 1e-3)
	assert.InDelta(t, 1491/469.5, pair.vsUDS, 1e-12)
	assert.Equal(t, 0.0, pair.allocs.Center)

	loan := byName(t, rows, name, "ports-loan/1MiB")
	assert.InDelta(t, 168781.0/2005, loan.vsUDS, 1e-12)
	assert.Equal(t, 1.0, loan.allocs.Center)

	ch := byName(t, rows, name, "chan/4KiB")
	assert.InDelta(t, 2421/321.0, ch.vsUDS, 1e-12)
}

func TestIdleAndLatencyOfOneRun(t *testing.T) {
	s := load(t, oneRun)
	idle := idleRows(s)
	require.Len(t, idle, 5)
	pair := idle[1]
	assert.Equal(t, "pair", pair.name)
	assert.InDelta(t, 0.01684, pair.cpuSelf.Center, 1e-12)
	assert.InDelta(t, 0.02199, pair.cpuPeer.Center, 1e-12)
	assert.InDelta(t, 20.49, pair.cswPeer.Center, 1e-12)
	assert.False(t, pair.goroutinesPerPair.ok)
	many := idle[4]
	assert.Equal(t, "many idle pairs", many.name)
	assert.InDelta(t, 1.001, many.goroutinesPerPair.Center, 1e-12)
	assert.InDelta(t, 2.001126157, many.window.Center, 1e-12)

	lat := latencyRows(s)
	require.Len(t, lat, 3)
	assert.Equal(t, "OpenPair/disk", lat[0].name)
	assert.InDelta(t, ns(3579516), lat[0].p50.Center, 1e-15)
	assert.Equal(t, "CrashDetect", lat[2].name)
	assert.InDelta(t, ns(1046098), lat[2].time.Center, 1e-15)
	assert.InDelta(t, ns(1638495), lat[2].p99.Center, 1e-15)
}

// Runs of several files are pooled: the uds rows then have seven runs, whose
// median the ratios use, and a finite confidence interval.
func TestMediansOfPooledRuns(t *testing.T) {
	s := load(t, oneRun, sixRuns)
	name := func(r roundTripRow) string { return r.name }

	rows := roundTripRows(s, roundTrip)
	uds := byName(t, rows, name, "uds")
	// 15239 15560 15796 [17987] 18260 18385 19520
	assert.InDelta(t, ns(17987), uds.time.Center, 1e-15)
	// 13841 14639 14701 [17044] 17093 17449 18003
	assert.InDelta(t, ns(17044), uds.p50.Center, 1e-15)
	assert.GreaterOrEqual(t, uds.time.Lo, ns(15239), "the interval lies within the runs")
	assert.LessOrEqual(t, uds.time.Lo, uds.time.Center)
	assert.GreaterOrEqual(t, uds.time.Hi, uds.time.Center)
	assert.LessOrEqual(t, uds.time.Hi, ns(19520))
	assert.GreaterOrEqual(t, uds.time.Confidence, 0.95)
	assert.NotEqual(t, "∞", uds.time.PctRangeString())

	pair := byName(t, rows, name, "pair")
	assert.InDelta(t, 13157.0/17987, pair.vsUDS, 1e-12)
	assert.InDelta(t, 13157.0/2811, pair.vsFloor, 1e-12, "the floor ran once")

	loaded := roundTripRows(s, roundTripLoaded)
	// 11423 11622 12676 [14245] 14450 18360 18826
	assert.InDelta(t, 51774.0/14245, byName(t, loaded, name, "pair").vsUDS, 1e-12)

	// six runs alone: the median is the mean of the middle two
	alone := roundTripRows(load(t, sixRuns), roundTrip)
	require.Len(t, alone, 1)
	assert.InDelta(t, ns((17987+18260)/2.0), alone[0].time.Center, 1e-15)
}

// lineOf returns the fields of the first line after the line starting with
// title that starts with first.
func lineOf(t *testing.T, out, title, first string) []string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\n"+title)
	require.True(t, ok, "no table %q in\n%s", title, out)
	for line := range strings.Lines(table) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return f
		}
	}
	require.Failf(t, "row missing", "no row %q under %q in\n%s", first, title, out)
	return nil
}

func TestCommandPrintsTheTables(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{oneRun}, strings.NewReader(""), &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	out := stdout.String()
	assert.True(t, strings.HasPrefix(out, "cpu: Intel(R) Xeon(R) Processor\n"), out)

	assert.Equal(t, []string{"case", "time", "±", "p50", "p99", "×uds", "×floor", "allocs/op"},
		lineOf(t, out, "Round trip, 64 B (", "case"))
	assert.Equal(t, []string{"pair", "13.16µs", "∞", "10.65µs", "64.23µs", "0.83×", "4.68×", "1"},
		lineOf(t, out, "Round trip, 64 B (", "pair"))
	assert.Equal(t, []string{"pair", "51.77µs", "∞", "47.21µs", "142.9µs", "2.82×", "18.4×", "1"},
		lineOf(t, out, "Round trip, 64 B, while", "pair"))
	assert.Equal(t, []string{"64B", "uds", "670.7k", "∞", "42.93M", "1.00×", "0"},
		lineOf(t, out, "Throughput", "64B"))
	assert.Equal(t, []string{"pair", "2.130M", "∞", "136.3M", "3.18×", "0"},
		lineOf(t, out, "Throughput", "pair"))
	assert.Equal(t, []string{"uds", "2.0", "s", "0.010", "0.010", "3.00", "4.00", "-"},
		lineOf(t, out, "Idle", "uds"))
	assert.Equal(t, []string{"CrashDetect", "1.046ms", "∞", "1.067ms", "1.638ms"},
		lineOf(t, out, "Opening a pair", "CrashDetect"))
	assert.Equal(t, []string{"Call/send", "822.0ns", "∞", "-", "-", "-", "0"},
		lineOf(t, out, "Other benchmarks", "Call/send"))
	assert.Contains(t, out, "\nnote: need >= 6 samples for confidence interval at level 0.95\n")
	assert.Empty(t, stderr.String())
}

func TestCommandPoolsFilesAndStdin(t *testing.T) {
	six, err := os.ReadFile(sixRuns)
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	code := run([]string{oneRun, "-"}, bytes.NewReader(six), &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	f := lineOf(t, stdout.String(), "Round trip, 64 B (", "uds")
	assert.Equal(t, "17.99µs", f[1])
	assert.NotEqual(t, "∞", f[2])
}

func TestCommandReportsAFailedRun(t *testing.T) {
	good, err := os.ReadFile(oneRun)
	require.NoError(t, err)
	in := string(good) + "--- FAIL: BenchmarkCrashDetect-2\n" +
		"    bench_test.go:1676: crash not detected within 20 s\n" +
		"FAIL\nexit status 1\nFAIL\tgithub.com/iox-go/iox\t25.012s\n"
	var stdout, stderr bytes.Buffer
	code := run(nil, strings.NewReader(in), &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout.String(), "Round trip, 64 B", "what could be read is printed")
	assert.Contains(t, stderr.String(), "the run reported failures")
	assert.Contains(t, stderr.String(), "--- FAIL: BenchmarkCrashDetect-2")
	assert.Contains(t, stderr.String(), "FAIL\tgithub.com/iox-go/iox")
}

func TestCommandRefusesBadInput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 1, run(nil, strings.NewReader("PASS\nok  \tgithub.com/iox-go/iox\t0.1s\n"), &stdout, &stderr))
	assert.Contains(t, stderr.String(), "no benchmark results")

	stderr.Reset()
	assert.Equal(t, 1, run([]string{"testdata/no-such-file"}, strings.NewReader(""), &stdout, &stderr))
	assert.Contains(t, stderr.String(), "no-such-file")

	stderr.Reset()
	assert.Equal(t, 2, run([]string{"-count", oneRun}, strings.NewReader(""), &stdout, &stderr))
	assert.Contains(t, stderr.String(), "usage: benchtable [FILE...]")

	// A benchmark line that does not parse is reported and skipped.
	stdout.Reset()
	stderr.Reset()
	in := "BenchmarkRoundTrip/uds-2 \t 100 \t 15796 ns/op\nBenchmarkRoundTrip/pair-2 \t many \t 1 ns/op\n"
	assert.Equal(t, 0, run(nil, strings.NewReader(in), &stdout, &stderr))
	assert.Contains(t, stdout.String(), "15.80µs")
	assert.Contains(t, stderr.String(), "skipped stdin:2: parsing iteration count")
	assert.NotContains(t, stdout.String(), "\npair ")
}

func TestRPCRatiosAgainstNetRPC(t *testing.T) {
	const run = `goos: linux
goarch: amd64
pkg: github.com/iox-go/iox
BenchmarkRPC/netrpc/serial-2         	   10000	     40000 ns/op	     38000 p50-ns	     90000 p99-ns	     400 B/op	       12 allocs/op
BenchmarkRPC/netrpc/parallel-2       	   50000	     20000 ns/op	     50000 calls/s	     400 B/op	       12 allocs/op
BenchmarkRPC/iox/serial-2            	   50000	     10000 ns/op	      9000 p50-ns	     30000 p99-ns	      64 B/op	        3 allocs/op
BenchmarkRPC/iox/parallel-2          	  200000	      5000 ns/op	    200000 calls/s	      64 B/op	        3 allocs/op
`
	s := newResults()
	require.NoError(t, s.read(strings.NewReader(run), "run"))
	rows := rpcRows(s)
	require.Len(t, rows, 2)
	x := byName(t, rows, func(r rpcRow) string { return r.name }, "iox")
	assert.InDelta(t, 0.25, x.vsNetRPC, 1e-9)    // 10 µs / 40 µs
	assert.InDelta(t, 4.0, x.rateVsNetRPC, 1e-9) // 200k/s / 50k/s, from ns/op
	assert.InDelta(t, ns(9000), x.p50.Center, 1e-12)
	n := byName(t, rows, func(r rpcRow) string { return r.name }, "netrpc")
	assert.InDelta(t, 1.0, n.vsNetRPC, 1e-9)
}
