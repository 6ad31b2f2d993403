// Command benchtable reads `go test -bench` output (the benchstat text format) and
// prints the iox benchmarks as ratios against the baselines measured in the same
// run:
//
//   - BenchmarkRoundTrip/<case>: ns per round trip, and that time relative to the
//     uds and native-floor rows (lower is better), with allocs/op; the ports,
//     pair and pair-spin rows are iox, the others baselines;
//   - BenchmarkThroughput/<case>/<size>: messages per second, MB/s, and the rate
//     relative to the uds row of the same size (higher is better), with
//     allocs/op; ports-copy, ports-loan, pair and pubsub are iox;
//   - BenchmarkIdleCPU/<case>: the CPU time of this process and of its peer
//     process over an idle window as a percentage of one core, and their context
//     switches per second (the cpu%-self, cpu%-peer, csw/s-self and csw/s-peer
//     metrics).
//
// Other benchmarks are listed as they are. When a benchmark appears several times
// (-count), the median of each metric is used.
//
// Usage:
//
//	benchtable [FILE]
//
// With no FILE, or when FILE is -, it reads standard input. It exits with status 1
// when the input holds no benchmark results or reports a failure (a FAIL line or a
// panic), after printing what it could.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// result is one benchmark's metrics, unit → values from every line of it.
type result struct {
	name    string
	metrics map[string][]float64
}

// value returns the median of a metric; ok is false when it was not reported.
func (r *result) value(unit string) (float64, bool) {
	vs := r.metrics[unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// input is everything read from the benchmark output.
type input struct {
	results []*result          // in order of first appearance
	byName  map[string]*result // name without the -GOMAXPROCS suffix
	config  []string           // goos, goarch, pkg, cpu lines
	failed  []string           // lines reporting a failure
}

var procSuffix = regexp.MustCompile(`-[0-9]+$`)

func parse(r io.Reader) (*input, error) {
	in := &input{byName: map[string]*result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "FAIL") || strings.HasPrefix(trimmed, "--- FAIL") ||
			strings.HasPrefix(line, "panic:"):
			in.failed = append(in.failed, trimmed)
			continue
		case strings.HasPrefix(line, "cpu:") || strings.HasPrefix(line, "goos:") ||
			strings.HasPrefix(line, "goarch:") || strings.HasPrefix(line, "pkg:"):
			in.config = append(in.config, trimmed)
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		f := strings.Fields(line)
		// name, iterations, then value-unit pairs
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		res := in.byName[name]
		if res == nil {
			res = &result{name: name, metrics: map[string][]float64{}}
			in.byName[name] = res
			in.results = append(in.results, res)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.metrics[f[i+1]] = append(res.metrics[f[i+1]], v)
		}
	}
	return in, sc.Err()
}

const (
	roundTrip       = "BenchmarkRoundTrip/"
	throughput      = "BenchmarkThroughput/"
	idleCPU         = "BenchmarkIdleCPU/"
	roundTripLoaded = "BenchmarkRoundTripLoaded/"
	idlePairs       = "BenchmarkIdlePairs"
)

func main() {
	var r io.Reader = os.Stdin
	switch {
	case len(os.Args) > 2:
		fmt.Fprintln(os.Stderr, "usage: benchtable [FILE]")
		os.Exit(2)
	case len(os.Args) == 2 && os.Args[1] != "-":
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		r = f
	}
	in, err := parse(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	write(os.Stdout, in)
	switch {
	case len(in.failed) > 0:
		fmt.Fprintf(os.Stderr, "benchtable: the run reported failures:\n  %s\n", strings.Join(in.failed, "\n  "))
		os.Exit(1)
	case len(in.results) == 0:
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results in the input")
		os.Exit(1)
	}
}

func write(w io.Writer, in *input) {
	for _, c := range in.config {
		if strings.HasPrefix(c, "cpu:") {
			fmt.Fprintln(w, c)
			break
		}
	}
	var rt, loaded, tp, idle, other []*result
	for _, res := range in.results {
		switch {
		case strings.HasPrefix(res.name, roundTrip):
			rt = append(rt, res)
		case strings.HasPrefix(res.name, roundTripLoaded):
			loaded = append(loaded, res)
		case strings.HasPrefix(res.name, throughput) && strings.Count(res.name, "/") == 2:
			tp = append(tp, res)
		case strings.HasPrefix(res.name, idleCPU) || res.name == idlePairs:
			idle = append(idle, res)
		default:
			other = append(other, res)
		}
	}
	if len(rt) > 0 {
		writeRoundTrip(w, in, rt, roundTrip, "Round trip, 64 B")
	}
	if len(loaded) > 0 {
		writeRoundTrip(w, in, loaded, roundTripLoaded, "Round trip, 64 B, while another process keeps one core busy")
	}
	if len(tp) > 0 {
		writeThroughput(w, in, tp)
	}
	if len(idle) > 0 {
		writeIdle(w, idle)
	}
	if len(other) > 0 {
		writeOther(w, other)
	}
}

// grid is a table whose first `text` columns are left-aligned and the rest,
// numbers, right-aligned.
type grid struct {
	text int
	rows [][]string
}

func (g *grid) add(cells ...string) { g.rows = append(g.rows, cells) }

func (g *grid) write(w io.Writer) {
	var width []int
	for _, row := range g.rows {
		for i, c := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range g.rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < g.text {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func writeRoundTrip(w io.Writer, in *input, rows []*result, prefix, title string) {
	fmt.Fprintln(w, "\n"+title+" (time per round trip: mean, median, 99th percentile; ×uds and ×floor = mean / that row's mean, lower is better)")
	uds, hasUDS := lookup(in, prefix+"uds", "ns/op")
	floor, hasFloor := lookup(in, roundTrip+"native-floor", "ns/op")
	g := grid{text: 1}
	g.add("case", "ns/rt", "p50", "p99", "×uds", "×floor", "allocs/op")
	for _, res := range rows {
		ns, ok := res.value("ns/op")
		p50, has50 := res.value("p50-ns")
		p99, has99 := res.value("p99-ns")
		g.add(strings.TrimPrefix(res.name, prefix), num(ns, ok), num(p50, has50), num(p99, has99),
			ratio(ns, uds, ok && hasUDS), ratio(ns, floor, ok && hasFloor), allocs(res))
	}
	g.write(w)
}

func writeThroughput(w io.Writer, in *input, rows []*result) {
	fmt.Fprintln(w, "\nThroughput, one way (×uds = msg/s / uds msg/s at the same size, higher is better)")
	// group by size, keeping the order in which sizes first appear
	var sizes []string
	bySize := map[string][]*result{}
	for _, res := range rows {
		parts := strings.Split(strings.TrimPrefix(res.name, throughput), "/")
		size := parts[1]
		if _, ok := bySize[size]; !ok {
			sizes = append(sizes, size)
		}
		bySize[size] = append(bySize[size], res)
	}
	g := grid{text: 2}
	g.add("size", "case", "msg/s", "MB/s", "×uds", "allocs/op")
	for _, size := range sizes {
		udsRate, hasUDS := rate(in.byName[throughput+"uds/"+size])
		for i, res := range bySize[size] {
			label := ""
			if i == 0 {
				label = size
			}
			name := strings.Split(strings.TrimPrefix(res.name, throughput), "/")[0]
			msgs, ok := rate(res)
			mbs, hasMB := res.value("MB/s")
			g.add(label, name, si(msgs, ok), num(mbs, hasMB), ratio(msgs, udsRate, ok && hasUDS), allocs(res))
		}
	}
	g.write(w)
}

func writeIdle(w io.Writer, rows []*result) {
	fmt.Fprintln(w, "\nIdle, connected and quiet (CPU time as % of one core, and context switches per second, of this process and of the peer process)")
	g := grid{text: 1}
	g.add("case", "window", "cpu% self", "cpu% peer", "csw/s self", "csw/s peer", "goroutines/pair")
	for _, res := range rows {
		ns, ok := res.value("ns/op")
		window := "-"
		if ok {
			window = strconv.FormatFloat(ns/1e9, 'f', 1, 64) + " s"
		}
		cell := func(unit string) string {
			v, ok := res.value(unit)
			return small(v, ok)
		}
		name := strings.TrimPrefix(res.name, idleCPU)
		if res.name == idlePairs {
			name = "many idle pairs"
		}
		g.add(name, window, cell("cpu%-self"), cell("cpu%-peer"), cell("csw/s-self"), cell("csw/s-peer"), cell("goroutines/pair"))
	}
	g.write(w)
}

func writeOther(w io.Writer, rows []*result) {
	fmt.Fprintln(w, "\nOther benchmarks")
	g := grid{text: 1}
	g.add("name", "ns/op", "p50", "p99", "MB/s", "allocs/op")
	for _, res := range rows {
		ns, ok := res.value("ns/op")
		p50, has50 := res.value("p50-ns")
		p99, has99 := res.value("p99-ns")
		mbs, hasMB := res.value("MB/s")
		g.add(strings.TrimPrefix(res.name, "Benchmark"), num(ns, ok), num(p50, has50), num(p99, has99), num(mbs, hasMB), allocs(res))
	}
	g.write(w)
}

func lookup(in *input, name, unit string) (float64, bool) {
	res := in.byName[name]
	if res == nil {
		return 0, false
	}
	v, ok := res.value(unit)
	return v, ok && v > 0
}

// rate is messages per second of a throughput row.
func rate(res *result) (float64, bool) {
	if res == nil {
		return 0, false
	}
	ns, ok := res.value("ns/op")
	if !ok || ns <= 0 {
		return 0, false
	}
	return 1e9 / ns, true
}

func allocs(res *result) string {
	v, ok := res.value("allocs/op")
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func num(v float64, ok bool) string {
	switch {
	case !ok:
		return "-"
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// small is num with three decimals below 1, for values such as 0.004 (% of a core).
func small(v float64, ok bool) string {
	if ok && v < 1 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return num(v, ok)
}

func ratio(v, base float64, ok bool) string {
	if !ok || base <= 0 {
		return "-"
	}
	r := v / base
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	case r >= 0.01:
		return fmt.Sprintf("%.2f×", r)
	default:
		return fmt.Sprintf("%.2g×", r) // two significant digits: 0.0013×
	}
}

// si formats a rate with a metric prefix: 1.23M, 456k.
func si(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	for _, p := range []struct {
		scale float64
		sym   string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= p.scale {
			return strconv.FormatFloat(v/p.scale, 'f', 3-digits(v/p.scale), 64) + p.sym
		}
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// digits is the number of digits before the decimal point of v >= 1.
func digits(v float64) int {
	d := 1
	for v >= 10 && d < 3 {
		v /= 10
		d++
	}
	return d
}
