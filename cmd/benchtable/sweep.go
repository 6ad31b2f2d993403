package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// minSweepSizes is how many message sizes a throughput case needs to count as
// part of the sweep (the cases measured from 64 B to 4 MiB).
const minSweepSizes = 4

// sweep is the one-way throughput against message size of the cases that were
// measured at many sizes: the data of the plot (plot.go) and of its table.
type sweep struct {
	sizes []string                     // size names, smallest first
	bytes map[string]int               // size name → bytes
	cases []string                     // in order of first appearance
	rate  map[string]map[string]metric // case → size → bytes per second
	best  map[string]metric            // size → the best kernel path's bytes per second
}

// sizeBytes parses a benchmark's size name: 64B, 16KiB, 4MiB.
func sizeBytes(name string) (int, bool) {
	unit := 1
	num := strings.TrimSuffix(name, "B")
	switch {
	case strings.HasSuffix(name, "KiB"):
		unit, num = 1<<10, strings.TrimSuffix(name, "KiB")
	case strings.HasSuffix(name, "MiB"):
		unit, num = 1<<20, strings.TrimSuffix(name, "MiB")
	case !strings.HasSuffix(name, "B"):
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * unit, true
}

// sweepOf collects the Throughput/<case>/<size> results of the cases measured
// at minSweepSizes sizes or more.
func sweepOf(s *results) sweep {
	sw := sweep{bytes: map[string]int{}, rate: map[string]map[string]metric{}, best: map[string]metric{}}
	sizesOf := map[string][]string{}
	var order []string
	for _, name := range s.order {
		c, size, ok := strings.Cut(strings.TrimPrefix(name, throughput), "/")
		if !strings.HasPrefix(name, throughput) || !ok {
			continue
		}
		n, ok := sizeBytes(size)
		if !ok {
			continue
		}
		if sizesOf[c] == nil {
			order = append(order, c)
		}
		sizesOf[c] = append(sizesOf[c], size)
		sw.bytes[size] = n
	}
	for _, c := range order {
		if len(sizesOf[c]) < minSweepSizes {
			continue
		}
		sw.cases = append(sw.cases, c)
		sw.rate[c] = map[string]metric{}
		for _, size := range sizesOf[c] {
			sw.rate[c][size] = s.metric(throughput+c+"/"+size, "B/s")
			if !slices.Contains(sw.sizes, size) {
				sw.sizes = append(sw.sizes, size)
			}
		}
	}
	slices.SortFunc(sw.sizes, func(a, b string) int { return sw.bytes[a] - sw.bytes[b] })
	for _, size := range sw.sizes {
		for _, k := range kernelCases {
			if m := sw.rate[k][size]; m.ok && (!sw.best[size].ok || m.Center > sw.best[size].Center) {
				sw.best[size] = m
			}
		}
	}
	return sw
}

func writeSweep(w io.Writer, sw sweep) {
	fmt.Fprintln(w, "\nThroughput against message size, one way (bytes per second, median over the runs; below, iox's cases / the fastest kernel path at that size, higher is better)")
	g := grid{text: 1}
	g.add(append([]string{"case"}, sw.sizes...)...)
	for _, c := range sw.cases {
		row := []string{c}
		for _, size := range sw.sizes {
			row = append(row, scaled(sw.rate[c][size]))
		}
		g.add(row...)
	}
	for _, c := range sw.cases {
		if slices.Contains(kernelCases, c) {
			continue
		}
		row := []string{c + " ×kernel"}
		for _, size := range sw.sizes {
			row = append(row, times(ratio(sw.rate[c][size], sw.best[size])))
		}
		g.add(row...)
	}
	g.write(w)
}
