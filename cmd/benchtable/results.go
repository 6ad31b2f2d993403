package main

import (
	"bytes"
	"io"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// confidence is the level of the confidence intervals shown (benchstat's).
const confidence = 0.95

// results are the benchmark results of one or more inputs, pooled by benchmark.
// Values are in benchfmt's tidied units: sec/op for ns/op, p50-sec for p50-ns,
// B/s for MB/s, other units as reported.
type results struct {
	reader    benchfmt.Reader
	cpu       string                          // the cpu: line of the first input with one
	order     []string                        // names, in order of first appearance
	values    map[string]map[string][]float64 // name → unit → one value per run
	failures  []string                        // lines of the input reporting a failure
	malformed []error                         // benchmark lines that did not parse
	notes     []string                        // warnings of the statistics shown, once each
	files     []*results                      // each input's own results, in the order read
	of        *results                        // for an input's own results: the pooled ones, which read it
}

func newResults() *results {
	return &results{values: map[string]map[string][]float64{}}
}

// read adds the results in r; name is r's name in error messages.
func (s *results) read(r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.failures = append(s.failures, failureLines(data)...)
	file := newResults()
	file.of = s
	s.files = append(s.files, file)
	// Reset keeps the unit metadata of earlier inputs.
	s.reader.Reset(bytes.NewReader(data), name)
	for s.reader.Scan() {
		switch rec := s.reader.Result().(type) {
		case *benchfmt.Result:
			s.add(rec)
			file.add(rec)
		case *benchfmt.SyntaxError:
			s.malformed = append(s.malformed, rec)
		}
	}
	return s.reader.Err()
}

func (s *results) add(r *benchfmt.Result) {
	if s.cpu == "" {
		s.cpu = r.GetConfig("cpu")
	}
	name := benchName(r.Name)
	units := s.values[name]
	if units == nil {
		units = map[string][]float64{}
		s.values[name] = units
		s.order = append(s.order, name)
	}
	for _, v := range r.Values {
		units[v.Unit] = append(units[v.Unit], v.Value)
	}
}

// benchName is a result's name without "Benchmark" and without the -GOMAXPROCS
// suffix: "RoundTrip/uds".
func benchName(n benchfmt.Name) string {
	base, parts := n.Parts()
	var b strings.Builder
	b.Write(base)
	for _, p := range parts {
		if p[0] != '-' {
			b.Write(p)
		}
	}
	return b.String()
}

// failureLines returns the lines of go test output that report a failure.
func failureLines(data []byte) []string {
	var failed []string
	for line := range strings.Lines(string(data)) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(trimmed, "--- FAIL") ||
			strings.HasPrefix(line, "panic:") {
			failed = append(failed, trimmed)
		}
	}
	return failed
}

// has reports whether the benchmark was in the input.
func (s *results) has(name string) bool { return s.values[name] != nil }

// metric is the summary of one metric of one benchmark over its runs.
type metric struct {
	benchmath.Summary
	ok bool // the metric was reported
}

// metric summarises the values of a unit of a benchmark: their median (under
// the unit's assumption, which for most units is benchmath.AssumeNothing) and
// its confidence interval.
func (s *results) metric(name, unit string) metric {
	return s.summarise(s.values[name][unit], unit)
}

// rate summarises the runs of a benchmark as operations per second.
func (s *results) rate(name string) metric {
	var perSec []float64
	for _, v := range s.values[name]["sec/op"] {
		if v > 0 {
			perSec = append(perSec, 1/v)
		}
	}
	return s.summarise(perSec, "ops/s")
}

func (s *results) summarise(values []float64, unit string) metric {
	if len(values) == 0 {
		return metric{}
	}
	sample := benchmath.NewSample(slices.Clone(values), &benchmath.DefaultThresholds)
	units := s.reader.Units()
	if s.of != nil {
		units = s.of.reader.Units()
	}
	sum := units.GetAssumption(unit).Summary(sample, confidence)
	for _, w := range append(sample.Warnings, sum.Warnings...) {
		if !slices.Contains(s.notes, w.Error()) {
			s.notes = append(s.notes, w.Error())
		}
	}
	return metric{Summary: sum, ok: true}
}

// ratio is a's center over b's, or 0 when either is missing or b's is not
// positive.
func ratio(a, b metric) float64 {
	if !a.ok || !b.ok || b.Center <= 0 {
		return 0
	}
	return a.Center / b.Center
}

// perFile is f applied to each input's own results when there are several
// inputs, nil otherwise: the ratio of each run beside the ratio of the medians.
func (s *results) perFile(f func(*results) float64) []float64 {
	if len(s.files) < 2 {
		return nil
	}
	var r []float64
	for _, file := range s.files {
		r = append(r, f(file))
	}
	return r
}
