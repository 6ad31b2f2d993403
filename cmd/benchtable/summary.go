package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// measureKind is how a summary row compares iox with its baseline.
type measureKind int

const (
	latency measureKind = iota // the p50 of single operations, lower is better
	rate                       // operations per second, higher is better
)

// measure is one row of the summary: an iox benchmark against a baseline of the
// same run.
type measure struct {
	title string
	iox   []string // benchmark names; the first in the input is shown
	base  string   // the baseline's benchmark name
	kind  measureKind
	// kernel, when not empty, is the prefix and suffix around the kernel
	// cases (kernelCases) that the row is also compared with: the best of them.
	kernelPrefix, kernelSuffix string
}

// measures are the rows of the summary, in order: the bandwidth and latency
// figures that matter most, each against the baseline a Go developer would
// otherwise use.
var measures = []measure{
	{title: "round trip 64 B, p50", iox: []string{"RoundTrip/pair-sendrecv"}, base: "RoundTrip/uds", kind: latency, kernelPrefix: roundTrip},
	{title: "round trip 64 B, In/Out, p50", iox: []string{"RoundTrip/pair"}, base: "RoundTrip/uds", kind: latency, kernelPrefix: roundTrip},
	{title: "round trip 64 B, p50, raw ports", iox: []string{"RoundTrip/ports"}, base: "RoundTrip/uds", kind: latency, kernelPrefix: roundTrip},
	{title: "one-way 64 B", iox: []string{"Throughput/pair/64B"}, base: "Throughput/uds/64B", kind: rate, kernelPrefix: throughput, kernelSuffix: "/64B"},
	{title: "calls, serial, p50", iox: []string{"RPC/iox/serial"}, base: "RPC/netrpc/serial", kind: latency},
	{title: "one-way 4 KiB", iox: []string{"Throughput/pair/4KiB"}, base: "Throughput/uds/4KiB", kind: rate, kernelPrefix: throughput, kernelSuffix: "/4KiB"},
	{title: "one-way 1 MiB, copying", iox: []string{"Throughput/pair/1MiB"}, base: "Throughput/uds/1MiB", kind: rate, kernelPrefix: throughput, kernelSuffix: "/1MiB"},
	{title: "one-way 1 MiB, zero-copy", iox: []string{"Throughput/pair-zerocopy/1MiB", "Throughput/ports-zerocopy/1MiB"}, base: "Throughput/uds/1MiB", kind: rate, kernelPrefix: throughput, kernelSuffix: "/1MiB"},
	{title: "fan-out to 4, 4 KiB", iox: []string{"Fanout/pubsub/4KiB"}, base: "Fanout/uds/4KiB", kind: rate},
	{title: "fan-out to 4, 1 MiB, zero-copy", iox: []string{"Fanout/zerocopy/1MiB", "Fanout/ports-zerocopy/1MiB"}, base: "Fanout/uds/1MiB", kind: rate},
	{title: "64 concurrent calls, 64 B", iox: []string{"RPC/iox/parallel"}, base: "RPC/netrpc/parallel", kind: rate},
	{title: "round trip 64 B, one core busy, p50", iox: []string{"RoundTripLoaded/pair-sendrecv"}, base: "RoundTripLoaded/uds", kind: latency, kernelPrefix: roundTripLoaded},
	{title: "round trip 64 B, In/Out, one core busy, p50", iox: []string{"RoundTripLoaded/pair"}, base: "RoundTripLoaded/uds", kind: latency, kernelPrefix: roundTripLoaded},
}

// summaryRow is a measure as the input has it.
type summaryRow struct {
	measure
	ioxName          string  // the iox benchmark shown
	ioxVal, baseVal  metric  // p50 (latency) or operations per second (rate)
	ioxP99, baseP99  metric  // latency only
	vsBase           float64 // iox / baseline, of the medians
	runs             []float64
	kernel           string // the best kernel case, when compared
	kernelVal        metric
	vsKernel         float64
	kernelRuns       []float64
	ioxBytes, baseBS metric // bytes per second (rate)
}

// value is what a row compares for a benchmark: its p50, or its rate.
func (m measure) value(s *results, name string) metric {
	if m.kind == latency {
		return s.metric(name, "p50-sec")
	}
	return s.rate(name)
}

// bestKernel is the best kernel path of the row's table, and its name.
func (m measure) bestKernel(s *results) (metric, string) {
	if m.kind == latency {
		return bestKernelTime(s, m.kernelPrefix, "p50-sec")
	}
	return bestKernelRate(s, m.kernelPrefix, m.kernelSuffix)
}

// summaryRows are the measures whose iox benchmark and baseline are both in
// the input.
func summaryRows(s *results) []summaryRow {
	var rows []summaryRow
	for _, m := range measures {
		r := summaryRow{measure: m}
		for _, n := range m.iox {
			if s.has(n) {
				r.ioxName = n
				break
			}
		}
		if r.ioxName == "" || !s.has(m.base) {
			continue
		}
		r.ioxVal, r.baseVal = m.value(s, r.ioxName), m.value(s, m.base)
		r.vsBase = ratio(r.ioxVal, r.baseVal)
		r.runs = s.perFile(func(f *results) float64 { return ratio(m.value(f, r.ioxName), m.value(f, m.base)) })
		r.vsBase = medianRatio(r.vsBase, r.runs)
		if m.kind == latency {
			r.ioxP99, r.baseP99 = s.metric(r.ioxName, "p99-sec"), s.metric(m.base, "p99-sec")
		} else {
			r.ioxBytes, r.baseBS = s.metric(r.ioxName, "B/s"), s.metric(m.base, "B/s")
		}
		if m.kernelPrefix != "" {
			r.kernelVal, r.kernel = m.bestKernel(s)
			r.vsKernel = ratio(r.ioxVal, r.kernelVal)
			r.kernelRuns = s.perFile(func(f *results) float64 {
				k, _ := m.bestKernel(f)
				return ratio(m.value(f, r.ioxName), k)
			})
			r.vsKernel = medianRatio(r.vsKernel, r.kernelRuns)
		}
		rows = append(rows, r)
	}
	return rows
}

// medianRatio is the median of the runs' own ratios (each against the
// baseline of its own run) when there are several runs, else pooled: the
// ratio of the pooled medians.
func medianRatio(pooled float64, runs []float64) float64 {
	var ok []float64
	for _, x := range runs {
		if x > 0 {
			ok = append(ok, x)
		}
	}
	if len(ok) < 2 || len(ok) != len(runs) {
		return pooled
	}
	slices.Sort(ok)
	if n := len(ok); n%2 == 1 {
		return ok[n/2]
	} else {
		return (ok[n/2-1] + ok[n/2]) / 2
	}
}

// withRuns is a ratio followed by each run's ratio in brackets: 0.58× [0.55
// 0.56 0.60].
func withRuns(r float64, runs []float64) string {
	if r <= 0 || len(runs) == 0 {
		return times(r)
	}
	each := make([]string, len(runs))
	for i, x := range runs {
		each[i] = strings.TrimSuffix(times(x), "×")
	}
	return times(r) + " [" + strings.Join(each, " ") + "]"
}

// shown is a row's value for one benchmark: p50 and p99 of a latency, or the
// rate with its bytes per second.
func (r summaryRow) shown(v, extra metric) string {
	if r.kind == latency {
		return seconds(v) + " / " + seconds(extra)
	}
	if extra.ok {
		return scaled(v) + "/s " + scaled(extra) + "B/s"
	}
	return scaled(v) + "/s"
}

func writeSummary(w io.Writer, rows []summaryRow, files int) {
	runs := ""
	if files > 1 {
		runs = fmt.Sprintf("; in brackets, the ratio of each of the %d inputs", files)
	}
	fmt.Fprintln(w, "\nSummary (latencies: p50 / p99 of single operations, the ratio of the p50s, lower is better; rates: operations and bytes per second, the ratio of the rates, higher is better; "+
		"values: medians over the runs; ratios: the median of the runs' ratios, each against the baseline of the same run"+runs+"; ×kernel: against the best of uds, seqpacket and pipe)")
	g := grid{text: 2}
	g.add("measure", "iox case", "iox", "baseline", "×baseline", "best kernel", "×kernel")
	for _, r := range rows {
		base := strings.SplitN(r.base, "/", 3)[1]
		kernel := missing
		if r.kernel != "" {
			kernel = r.kernel + " " + r.shown(r.kernelVal, metric{})
			if r.kind == latency {
				kernel = r.kernel + " " + seconds(r.kernelVal)
			}
		}
		g.add(r.title, strings.SplitN(r.ioxName, "/", 2)[1], r.shown(r.ioxVal, pick(r.ioxP99, r.ioxBytes)),
			base+" "+r.shown(r.baseVal, pick(r.baseP99, r.baseBS)), withRuns(r.vsBase, r.runs),
			kernel, withRuns(r.vsKernel, r.kernelRuns))
	}
	g.write(w)
}

// pick is whichever of a and b was reported.
func pick(a, b metric) metric {
	if a.ok {
		return a
	}
	return b
}
