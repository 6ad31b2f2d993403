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
	rows := throughputRows(s, throughput)
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

	assert.Equal(t, []string{"case", "time", "±", "p50", "p99", "×uds", "×kernel", "×floor", "allocs/op"},
		lineOf(t, out, "Round trip, 64 B (", "case"))
	assert.Equal(t, []string{"pair", "13.16µs", "∞", "10.65µs", "64.23µs", "0.83×", "0.83×", "4.68×", "1"},
		lineOf(t, out, "Round trip, 64 B (", "pair"))
	assert.Equal(t, []string{"pair", "51.77µs", "∞", "47.21µs", "142.9µs", "2.82×", "2.82×", "18.4×", "1"},
		lineOf(t, out, "Round trip, 64 B, while", "pair"))
	assert.Equal(t, []string{"64B", "uds", "670.7k", "∞", "42.93M", "1.00×", "1.00×", "0"},
		lineOf(t, out, "Throughput", "64B"))
	assert.Equal(t, []string{"pair", "2.130M", "∞", "136.3M", "3.18×", "3.18×", "0"},
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
	assert.Contains(t, stderr.String(), "usage: benchtable [-plot FILE] [FILE...]")

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

// testdata/runs/run{1,2,3}.txt are three small runs written for these tests:
// round trips over the three kernel paths and a pair, and 1 MiB throughput.
var threeRuns = []string{"testdata/runs/run1.txt", "testdata/runs/run2.txt", "testdata/runs/run3.txt"}

func TestSummaryGivesEachRunsRatio(t *testing.T) {
	s := load(t, threeRuns...)
	rows := summaryRows(s)
	title := func(r summaryRow) string { return r.title }
	require.Len(t, rows, 2, "only the measures whose benchmarks are in the input")

	rt := byName(t, rows, title, "round trip 64 B, p50")
	assert.Equal(t, "RoundTrip/pair-sendrecv", rt.ioxName)
	assert.InDelta(t, 0.5, rt.vsBase, 1e-12, "the median of the runs' ratios 0.40, 0.50, 0.50 (not 9 µs / 20 µs, the pooled medians)")
	assert.InDeltaSlice(t, []float64{8000.0 / 20000, 11000.0 / 22000, 9000.0 / 18000}, rt.runs, 1e-12)
	assert.Equal(t, "pipe", rt.kernel, "the lowest median p50 of the kernel paths")
	assert.InDelta(t, 11000.0/21000, rt.vsKernel, 1e-12, "the median of 0.500, 0.524, 0.529")
	assert.InDeltaSlice(t, []float64{8000.0 / 16000, 11000.0 / 21000, 9000.0 / 17000}, rt.kernelRuns, 1e-12,
		"each run against its own best kernel path")
	assert.InDelta(t, ns(36000), rt.ioxP99.Center, 1e-15)

	zc := byName(t, rows, title, "one-way 1 MiB, zero-copy")
	assert.Equal(t, "Throughput/ports-zerocopy/1MiB", zc.ioxName, "pair-zerocopy is not in the input")
	assert.InDelta(t, 200, zc.vsBase, 1e-9)
	assert.InDeltaSlice(t, []float64{200, 200, 150}, zc.runs, 1e-9)
	assert.Equal(t, "pipe", zc.kernel)
	assert.InDelta(t, 150, zc.vsKernel, 1e-9)
	assert.InDeltaSlice(t, []float64{150, 100, 150}, zc.kernelRuns, 1e-9)

	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(threeRuns, strings.NewReader(""), &stdout, &stderr), stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "the ratio of each of the 3 inputs")
	assert.Contains(t, lineOf(t, out, "Summary", "round"), "0.50×")
	line := strings.Join(lineOf(t, out, "Summary", "round"), " ")
	assert.Contains(t, line, "pair-sendrecv 9.000µs / 36.00µs uds 20.00µs / 60.00µs 0.50× [0.40 0.50 0.50] pipe 17.00µs 0.52× [0.50 0.52 0.53]")
	line = strings.Join(lineOf(t, out, "Summary", "one-way"), " ")
	assert.Contains(t, line, "200× [200 200 150]")
	assert.Contains(t, line, "150× [150 100 150]")

	one := load(t, threeRuns[0])
	assert.Nil(t, summaryRows(one)[0].runs, "one input: no brackets")
}

func TestRoundTripAgainstTheFastestKernelPath(t *testing.T) {
	rows := roundTripRows(load(t, threeRuns...), roundTrip)
	pair := byName(t, rows, func(r roundTripRow) string { return r.name }, "pair-sendrecv")
	// mean times: uds 22000, seqpacket 21000, pipe 19000 (medians)
	assert.InDelta(t, 10000.0/22000, pair.vsUDS, 1e-12)
	assert.InDelta(t, 10000.0/19000, pair.vsKernel, 1e-12)
}

// testdata/sweep.txt is a short run (-benchtime 100ms) of BenchmarkThroughput's
// cases at 64 B to 4 MiB and of BenchmarkFanout.
const sweepRun = "testdata/sweep.txt"

func TestSweepBySize(t *testing.T) {
	sw := sweepOf(load(t, sweepRun))
	assert.Equal(t, []string{"64B", "256B", "1KiB", "4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "4MiB"}, sw.sizes)
	assert.Equal(t, []string{"uds", "seqpacket", "pipe", "ports-zerocopy", "pair"}, sw.cases,
		"pubsub ran at three sizes only")
	assert.Equal(t, 4<<20, sw.bytes["4MiB"])
	assert.InDelta(t, 1715.91e6, sw.best["4KiB"].Center, 1, "pipe is the fastest kernel path at 4 KiB")
	assert.InDelta(t, 5289.29e6, sw.best["1MiB"].Center, 1, "uds at 1 MiB")
	assert.InDelta(t, 42031.57e6, sw.rate["ports-zerocopy"]["1MiB"].Center, 1)

	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{sweepRun}, strings.NewReader(""), &stdout, &stderr), stderr.String())
	_, table, ok := strings.Cut(stdout.String(), "\nThroughput against message size")
	require.True(t, ok)
	assert.Contains(t, table, "\npair ×kernel             1.06×   1.95×   1.93×   0.36×   0.53×   0.80×   1.45×   1.14×   0.88×\n")
	assert.Contains(t, table, "\npair                    48.86M  286.4M  813.7M  624.9M  1.326G  2.537G  6.657G  6.017G  4.280G\n")
	assert.NotContains(t, table, "\nuds ×kernel", "the kernel paths are the baseline")
}

func TestSizeNames(t *testing.T) {
	for name, want := range map[string]int{"64B": 64, "4KiB": 4096, "16KiB": 16384, "1MiB": 1 << 20, "4MiB": 4 << 20} {
		n, ok := sizeBytes(name)
		assert.True(t, ok, name)
		assert.Equal(t, want, n, name)
	}
	for _, bad := range []string{"", "B", "KiB", "x4KiB", "4GiB", "-1B", "0B", "parallel"} {
		_, ok := sizeBytes(bad)
		assert.False(t, ok, bad)
	}
	assert.Equal(t, "4 KiB", spacedSize("4KiB"))
	assert.Equal(t, "64 B", spacedSize("64B"))
}

func TestFanoutAgainstUDS(t *testing.T) {
	rows := throughputRows(load(t, sweepRun), fanout)
	require.Len(t, rows, 6)
	zc := byName(t, rows, func(r throughputRow) string { return r.name + "/" + r.size }, "ports-zerocopy/1MiB")
	assert.InDelta(t, 1638645.0/376469, zc.vsUDS, 1e-12)
}

func TestPlotDrawsOneLinePerCase(t *testing.T) {
	path := t.TempDir() + "/throughput.svg"
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-plot", path, sweepRun}, strings.NewReader(""), &stdout, &stderr), stderr.String())
	svg, err := os.ReadFile(path)
	require.NoError(t, err)
	out := string(svg)
	assert.Contains(t, out, "<svg")
	for _, label := range []string{"iox ports, zero copy (Loan, Borrow)", "iox Pair, copying (Send/Recv)",
		"Unix stream socket", "Unix seqpacket socket", "pipe (1 MiB buffer)", "4 MiB", "10 GB/s"} {
		assert.Contains(t, out, ">"+label+"<", label)
	}
	assert.NotContains(t, out, "Pair, zero copy", "pair-zerocopy is not in the input")
	assert.NotContains(t, out, svgFont, "the font names its fallbacks")
	assert.Contains(t, out, svgFonts)

	// No sweep in the input: no plot, and the command says so.
	stderr.Reset()
	none := t.TempDir() + "/none.svg"
	assert.Equal(t, 1, run([]string{"-plot", none, threeRuns[0]}, strings.NewReader(""), &stdout, &stderr))
	assert.Contains(t, stderr.String(), errNothingToPlot.Error())
	assert.NoFileExists(t, none)
}
