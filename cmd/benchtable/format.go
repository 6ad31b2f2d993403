package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/perf/benchunit"
)

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

const missing = "-"

// seconds formats a time with an SI prefix: 15.80µs.
func seconds(m metric) string {
	if !m.ok {
		return missing
	}
	return benchunit.Scale(m.Center, benchunit.Decimal) + "s"
}

// scaled formats a rate with an SI prefix: 670.7k.
func scaled(m metric) string {
	if !m.ok {
		return missing
	}
	return benchunit.Scale(m.Center, benchunit.Decimal)
}

// pct is the half-width of m's confidence interval as a percentage of its
// center, as benchstat shows it: 3%, or ∞ for too few runs.
func pct(m metric) string {
	if !m.ok {
		return missing
	}
	return m.PctRangeString()
}

// window formats an idle window's length: 2.0 s.
func window(m metric) string {
	if !m.ok {
		return missing
	}
	return strconv.FormatFloat(m.Center, 'f', 1, 64) + " s"
}

// count formats a count such as allocs/op, exactly.
func count(m metric) string {
	if !m.ok {
		return missing
	}
	return strconv.FormatFloat(m.Center, 'f', -1, 64)
}

// small formats a plain number with three decimals below 1, for values such as
// 0.004 (% of a core), and fewer above.
func small(m metric) string {
	switch v := m.Center; {
	case !m.ok:
		return missing
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// times formats a ratio: 0.83×, 18.4×, 0.0013×; - for none.
func times(r float64) string {
	switch {
	case r <= 0:
		return missing
	case r >= 99.95: // what %.1f would print as 100.0
		return fmt.Sprintf("%.0f×", r)
	case r >= 9.995:
		return fmt.Sprintf("%.1f×", r)
	case r >= 0.01:
		return fmt.Sprintf("%.2f×", r)
	default:
		return fmt.Sprintf("%.2g×", r) // two significant digits: 0.0013×
	}
}
