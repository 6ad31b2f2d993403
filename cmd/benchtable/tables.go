package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Benchmark names (without "Benchmark") of the README's tables.
const (
	roundTrip       = "RoundTrip/"
	roundTripLoaded = "RoundTripLoaded/"
	throughput      = "Throughput/"
	idleCPU         = "IdleCPU/"
	idlePairs       = "IdlePairs"
	openPair        = "OpenPair/"
	crashDetect     = "CrashDetect"
	rpc             = "RPC/"
	fanout          = "Fanout/"
)

// The baselines the ratios are taken against.
const (
	udsCase   = "uds"          // a Unix-domain socket between the same processes
	floorCase = "native-floor" // the Rust ping-pong over the same crate
	netRPC    = "netrpc"       // net/rpc over a Unix-domain socket
)

// kernelCases are the kernel's byte paths measured as baselines: a Unix stream
// socket, a Unix seqpacket socket and named pipes. "×kernel" compares with the
// best of them in the same table (and at the same size).
var kernelCases = []string{udsCase, "seqpacket", "pipe"}

// tableSizes are the message sizes of the throughput table; the other sizes of
// the sweep (64 B to 4 MiB) are shown by size only (see sweep.go).
var tableSizes = []string{"64B", "4KiB", "1MiB"}

// bestKernelTime is the lowest time (unit sec/op, p50-sec, …) of the kernel
// cases under prefix, and that case's name; ok is false without any.
func bestKernelTime(s *results, prefix, unit string) (m metric, name string) {
	for _, k := range kernelCases {
		if t := s.metric(prefix+k, unit); t.ok && (!m.ok || t.Center < m.Center) {
			m, name = t, k
		}
	}
	return m, name
}

// bestKernelRate is the highest rate of the kernel cases prefix+<case>+suffix,
// and that case's name.
func bestKernelRate(s *results, prefix, suffix string) (m metric, name string) {
	for _, k := range kernelCases {
		if r := s.rate(prefix + k + suffix); r.ok && (!m.ok || r.Center > m.Center) {
			m, name = r, k
		}
	}
	return m, name
}

// roundTripRow is one case of a round-trip table.
type roundTripRow struct {
	name           string
	time, p50, p99 metric
	allocs         metric
	vsUDS, vsFloor float64 // time / the baseline's time; 0 without one
	vsKernel       float64 // time / the best kernel path's time in the same table
}

// roundTripRows are the cases under prefix, against that table's uds row and
// the unloaded native floor.
func roundTripRows(s *results, prefix string) []roundTripRow {
	uds := s.metric(prefix+udsCase, "sec/op")
	floor := s.metric(roundTrip+floorCase, "sec/op")
	kernel, _ := bestKernelTime(s, prefix, "sec/op")
	var rows []roundTripRow
	for _, name := range s.order {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		t := s.metric(name, "sec/op")
		rows = append(rows, roundTripRow{
			name:     strings.TrimPrefix(name, prefix),
			time:     t,
			p50:      s.metric(name, "p50-sec"),
			p99:      s.metric(name, "p99-sec"),
			allocs:   s.metric(name, "allocs/op"),
			vsUDS:    ratio(t, uds),
			vsFloor:  ratio(t, floor),
			vsKernel: ratio(t, kernel),
		})
	}
	return rows
}

// throughputRow is one case at one message size of the throughput table.
type throughputRow struct {
	size, name string
	rate       metric // messages per second
	bytes      metric // bytes per second
	allocs     metric
	vsUDS      float64 // rate / the uds rate at the same size; 0 without one
	vsKernel   float64 // rate / the best kernel path's rate at the same size
}

// throughputRows are the <prefix><case>/<size> results (Throughput/, Fanout/)
// grouped by size, sizes and cases in order of first appearance; with only,
// just those sizes.
func throughputRows(s *results, prefix string, only ...string) []throughputRow {
	var sizes []string
	bySize := map[string][]string{}
	for _, name := range s.order {
		c, size, ok := strings.Cut(strings.TrimPrefix(name, prefix), "/")
		if !strings.HasPrefix(name, prefix) || !ok || strings.Contains(size, "/") ||
			len(only) > 0 && !slices.Contains(only, size) {
			continue
		}
		if bySize[size] == nil {
			sizes = append(sizes, size)
		}
		bySize[size] = append(bySize[size], c)
	}
	var rows []throughputRow
	for _, size := range sizes {
		uds := s.rate(prefix + udsCase + "/" + size)
		kernel, _ := bestKernelRate(s, prefix, "/"+size)
		for _, c := range bySize[size] {
			name := prefix + c + "/" + size
			r := s.rate(name)
			rows = append(rows, throughputRow{
				size:     size,
				name:     c,
				rate:     r,
				bytes:    s.metric(name, "B/s"),
				allocs:   s.metric(name, "allocs/op"),
				vsUDS:    ratio(r, uds),
				vsKernel: ratio(r, kernel),
			})
		}
	}
	return rows
}

// idleRow is one case of the idle table.
type idleRow struct {
	name              string
	window            metric // seconds
	cpuSelf, cpuPeer  metric // % of one core
	cswSelf, cswPeer  metric // context switches per second
	goroutinesPerPair metric
}

func idleRows(s *results) []idleRow {
	var rows []idleRow
	for _, name := range s.order {
		label := strings.TrimPrefix(name, idleCPU)
		switch {
		case name == idlePairs:
			label = "many idle pairs"
		case !strings.HasPrefix(name, idleCPU):
			continue
		}
		rows = append(rows, idleRow{
			name:              label,
			window:            s.metric(name, "sec/op"),
			cpuSelf:           s.metric(name, "cpu%-self"),
			cpuPeer:           s.metric(name, "cpu%-peer"),
			cswSelf:           s.metric(name, "csw/s-self"),
			cswPeer:           s.metric(name, "csw/s-peer"),
			goroutinesPerPair: s.metric(name, "goroutines/pair"),
		})
	}
	return rows
}

// latencyRow is a benchmark of single slow operations: opening a pair, or a
// crash's detection.
type latencyRow struct {
	name           string
	time, p50, p99 metric
}

func latencyRows(s *results) []latencyRow {
	var rows []latencyRow
	for _, name := range s.order {
		if strings.HasPrefix(name, openPair) || name == crashDetect {
			rows = append(rows, latencyRow{name, s.metric(name, "sec/op"), s.metric(name, "p50-sec"), s.metric(name, "p99-sec")})
		}
	}
	return rows
}

// inTable reports whether a benchmark is in one of the README's tables.
func inTable(name string) bool {
	for _, p := range []string{roundTrip, roundTripLoaded, idleCPU, openPair, rpc} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	if strings.HasPrefix(name, throughput) || strings.HasPrefix(name, fanout) {
		return strings.Count(name, "/") == 2
	}
	return name == idlePairs || name == crashDetect
}

func write(w io.Writer, s *results) {
	if s.cpu != "" {
		fmt.Fprintln(w, "cpu:", s.cpu)
	}
	if rows := summaryRows(s); len(rows) > 0 {
		writeSummary(w, rows, len(s.files))
	}
	if rows := roundTripRows(s, roundTrip); len(rows) > 0 {
		writeRoundTrip(w, rows, "Round trip, 64 B")
	}
	if rows := roundTripRows(s, roundTripLoaded); len(rows) > 0 {
		writeRoundTrip(w, rows, "Round trip, 64 B, while another process keeps one core busy")
	}
	if rows := throughputRows(s, throughput, tableSizes...); len(rows) > 0 {
		writeThroughput(w, rows, "Throughput, one way")
	}
	if sw := sweepOf(s); len(sw.cases) > 0 {
		writeSweep(w, sw)
	}
	if rows := throughputRows(s, fanout); len(rows) > 0 {
		writeThroughput(w, rows, "Fan-out, one publisher to 4 reader processes that each get every message")
	}
	if rows := idleRows(s); len(rows) > 0 {
		writeIdle(w, rows)
	}
	if rows := latencyRows(s); len(rows) > 0 {
		writeLatency(w, rows)
	}
	if rows := rpcRows(s); len(rows) > 0 {
		writeRPC(w, rows)
	}
	writeOther(w, s)
	if len(s.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range s.notes {
			fmt.Fprintln(w, "note:", n)
		}
	}
}

func writeRoundTrip(w io.Writer, rows []roundTripRow, title string) {
	fmt.Fprintln(w, "\n"+title+" (time per round trip: median over the runs, ± its 95% confidence interval; p50, p99: of the single round trips; ×uds, ×kernel and ×floor = time / the time of uds, of the fastest kernel path (uds, seqpacket, pipe) and of the native floor, lower is better)")
	g := grid{text: 1}
	g.add("case", "time", "±", "p50", "p99", "×uds", "×kernel", "×floor", "allocs/op")
	for _, r := range rows {
		g.add(r.name, seconds(r.time), pct(r.time), seconds(r.p50), seconds(r.p99),
			times(r.vsUDS), times(r.vsKernel), times(r.vsFloor), count(r.allocs))
	}
	g.write(w)
}

func writeThroughput(w io.Writer, rows []throughputRow, title string) {
	fmt.Fprintln(w, "\n"+title+" (msg/s ± its 95% confidence interval; ×uds and ×kernel = msg/s / that of uds and of the fastest kernel path (uds, seqpacket, pipe) at the same size, higher is better)")
	g := grid{text: 2}
	g.add("size", "case", "msg/s", "±", "B/s", "×uds", "×kernel", "allocs/op")
	for i, r := range rows {
		size := r.size
		if i > 0 && rows[i-1].size == size {
			size = ""
		}
		g.add(size, r.name, scaled(r.rate), pct(r.rate), scaled(r.bytes), times(r.vsUDS), times(r.vsKernel), count(r.allocs))
	}
	g.write(w)
}

func writeIdle(w io.Writer, rows []idleRow) {
	fmt.Fprintln(w, "\nIdle, connected and quiet (CPU time as % of one core, and context switches per second, of this process and of the peer process)")
	g := grid{text: 1}
	g.add("case", "window", "cpu% self", "cpu% peer", "csw/s self", "csw/s peer", "goroutines/pair")
	for _, r := range rows {
		g.add(r.name, window(r.window), small(r.cpuSelf), small(r.cpuPeer),
			small(r.cswSelf), small(r.cswPeer), small(r.goroutinesPerPair))
	}
	g.write(w)
}

func writeLatency(w io.Writer, rows []latencyRow) {
	fmt.Fprintln(w, "\nOpening a pair whose peer is there, and a peer's crash (SIGKILL) to Done (time per operation: median over the runs, ± its 95% confidence interval; p50, p99: of the single operations)")
	g := grid{text: 1}
	g.add("case", "time", "±", "p50", "p99")
	for _, r := range rows {
		g.add(r.name, seconds(r.time), pct(r.time), seconds(r.p50), seconds(r.p99))
	}
	g.write(w)
}

func writeOther(w io.Writer, s *results) {
	g := grid{text: 1}
	g.add("name", "time", "±", "p50", "p99", "B/s", "allocs/op")
	for _, name := range s.order {
		if inTable(name) {
			continue
		}
		t := s.metric(name, "sec/op")
		g.add(name, seconds(t), pct(t), seconds(s.metric(name, "p50-sec")), seconds(s.metric(name, "p99-sec")),
			scaled(s.metric(name, "B/s")), count(s.metric(name, "allocs/op")))
	}
	if len(g.rows) > 1 {
		fmt.Fprintln(w, "\nOther benchmarks")
		g.write(w)
	}
}

// rpcRow is one case of the request/response table: RPC/<case>/serial (one
// call at a time) and RPC/<case>/parallel (many callers).
type rpcRow struct {
	name           string
	time, p50, p99 metric // of the serial calls
	rate           metric // parallel calls per second
	allocs         metric // per serial call
	vsNetRPC       float64
	rateVsNetRPC   float64
}

func rpcRows(s *results) []rpcRow {
	base := s.metric(rpc+netRPC+"/serial", "sec/op")
	baseRate := s.rate(rpc + netRPC + "/parallel")
	var rows []rpcRow
	for _, name := range s.order {
		c, mode, ok := strings.Cut(strings.TrimPrefix(name, rpc), "/")
		if !strings.HasPrefix(name, rpc) || !ok || mode != "serial" {
			continue
		}
		t := s.metric(name, "sec/op")
		r := s.rate(rpc + c + "/parallel")
		rows = append(rows, rpcRow{name: c, time: t, p50: s.metric(name, "p50-sec"), p99: s.metric(name, "p99-sec"),
			rate: r, allocs: s.metric(name, "allocs/op"), vsNetRPC: ratio(t, base), rateVsNetRPC: ratio(r, baseRate)})
	}
	return rows
}

func writeRPC(w io.Writer, rows []rpcRow) {
	fmt.Fprintln(w, "\nCalls, 64 B request and response (time per call, one at a time: median ± its 95% confidence interval, p50, p99; calls/s with 64 callers; ×netrpc = time / net/rpc's time (lower is better) and calls/s / net/rpc's (higher is better))")
	g := grid{text: 1}
	g.add("case", "time", "±", "p50", "p99", "×netrpc", "calls/s (64)", "×netrpc", "allocs/op")
	for _, r := range rows {
		g.add(r.name, seconds(r.time), pct(r.time), seconds(r.p50), seconds(r.p99), times(r.vsNetRPC),
			scaled(r.rate), times(r.rateVsNetRPC), count(r.allocs))
	}
	g.write(w)
}
