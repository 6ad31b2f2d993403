package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is how the plot draws one throughput case.
type series struct {
	name   string // the case: Throughput/<name>/<size>
	label  string
	color  color.RGBA
	dashed bool // the kernel's paths are dashed, iox's solid
	shape  draw.GlyphDrawer
}

// plotted are the cases the plot draws, in legend order, when the input has
// them at several sizes.
var plotted = []series{
	{"pair-zerocopy", "iox Pair, zero copy (Loan/SendLoan, RecvView)", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, false, draw.CircleGlyph{}},
	{"ports-zerocopy", "iox ports, zero copy (Loan, Borrow)", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, false, draw.TriangleGlyph{}},
	{"pair", "iox Pair, copying (Send/Recv)", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, false, draw.SquareGlyph{}},
	{"uds", "Unix stream socket", color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, true, draw.CrossGlyph{}},
	{"seqpacket", "Unix seqpacket socket", color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, true, draw.PlusGlyph{}},
	{"pipe", "pipe (1 MiB buffer)", color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, true, draw.RingGlyph{}},
}

// errNothingToPlot is writePlot's error for an input without a sweep.
var errNothingToPlot = errors.New("no throughput case was measured at several sizes")

// writePlot draws the sweep in format (svg, png): bytes per second against
// message size, both axes logarithmic, one line per case of plotted; cpu names
// the machine.
func writePlot(w io.Writer, sw sweep, cpu, format string) error {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	p := plot.New()
	p.Title.Text = "One-way throughput between two processes, by message size"
	p.X.Label.Text = "message size"
	if cpu != "" {
		p.X.Label.Text += " (" + cpu + ")"
	}
	p.Y.Label.Text = "throughput (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = powerTicks{}
	p.Add(plotter.NewGrid())
	var ticks []plot.Tick
	for _, size := range sw.sizes {
		ticks = append(ticks, plot.Tick{Value: float64(sw.bytes[size]), Label: spacedSize(size)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	drawn := 0
	for _, se := range plotted {
		var xy plotter.XYs
		for _, size := range sw.sizes {
			if m := sw.rate[se.name][size]; m.ok && m.Center > 0 {
				xy = append(xy, plotter.XY{X: float64(sw.bytes[size]), Y: m.Center})
			}
		}
		if len(xy) < 2 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		line.Color, line.Width = se.color, vg.Points(2)
		if se.dashed {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			line.Width = vg.Points(1.5)
		}
		points.Color, points.Shape, points.Radius = se.color, se.shape, vg.Points(3)
		p.Add(line, points)
		p.Legend.Add(se.label, line, points)
		drawn++
	}
	if drawn == 0 {
		return errNothingToPlot
	}
	p.Legend.Top, p.Legend.Left = false, false // the lines rise to the right: room below them
	p.Legend.ThumbnailWidth = vg.Points(28)
	wt, err := p.WriterTo(18*vg.Centimeter, 12*vg.Centimeter, format)
	if err != nil {
		return err
	}
	if format != "svg" {
		_, err = wt.WriteTo(w)
		return err
	}
	var svg bytes.Buffer
	if _, err := wt.WriteTo(&svg); err != nil {
		return err
	}
	_, err = w.Write(bytes.ReplaceAll(svg.Bytes(), []byte(svgFont), []byte(svgFonts)))
	return err
}

// The SVG names the font its text was laid out with, Liberation Sans, which
// few viewers have; svgFonts adds the fonts of the same widths that they do
// have, so that the text fits where it was placed, then any sans-serif font.
const (
	svgFont  = "font-family:Liberation Sans;"
	svgFonts = "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"
)

// powerTicks marks each power of ten of a log axis of bytes per second with an
// SI prefix (1 MB/s, 10 MB/s, 100 MB/s, 1 GB/s) and each 2× and 5× in between
// without a label.
type powerTicks struct{}

func (powerTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		for _, f := range []float64{1, 2, 5} {
			v := f * d
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if f == 1 {
				t.Label = siLabel(v) + "B/s"
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// spacedSize is a size name with a space before its unit: 64 B, 4 KiB.
func spacedSize(name string) string {
	i := strings.IndexFunc(name, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return name
	}
	return name[:i] + " " + name[i:]
}

// siLabel is a power of ten with an SI prefix and a space: 1 k, 10 M, 100 G.
func siLabel(v float64) string {
	prefixes := []string{" ", " k", " M", " G", " T", " P"}
	e := int(math.Round(math.Log10(v)))
	if e < 0 || e/3 >= len(prefixes) {
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%d%s", int(math.Pow(10, float64(e%3))), prefixes[e/3])
}
