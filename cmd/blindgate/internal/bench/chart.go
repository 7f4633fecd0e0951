package bench

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strings"
)

// Chart draws throughput against closed-loop workers for every path, one
// panel per KEK, with the KEK's crypto limit as a dashed line. It uses only
// the standard library (image/png) and a built-in 5x7 bitmap font.
func Chart(rep *Report) ([]byte, error) {
	if len(rep.KEKs) == 0 {
		return nil, fmt.Errorf("bench: nothing to chart")
	}
	const pw, ph = 600, 420
	img := image.NewRGBA(image.Rect(0, 0, pw*len(rep.KEKs), ph))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	for i, k := range rep.KEKs {
		drawPanel(img, image.Rect(i*pw, 0, (i+1)*pw, ph), k)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteChart writes Chart's PNG to path.
func WriteChart(path string, rep *Report) error {
	b, err := Chart(rep)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

var (
	black     = color.RGBA{0, 0, 0, 255}
	grey      = color.RGBA{150, 150, 150, 255}
	lightGrey = color.RGBA{225, 225, 225, 255}
	pathColor = map[string]color.RGBA{
		PathInspect:       {31, 119, 180, 255},
		PathReveal:        {44, 160, 44, 255},
		PathSubmit:        {214, 39, 40, 255},
		PathForward:       {255, 127, 14, 255},
		PathForwardReplay: {148, 103, 189, 255},
	}
)

func drawPanel(img *image.RGBA, r image.Rectangle, k KEKResult) {
	left, right, top, bottom := r.Min.X+78, r.Max.X-34, r.Min.Y+66, r.Max.Y-56
	limit := 0.0
	for _, v := range k.LimitSamples {
		limit += v / float64(len(k.LimitSamples))
	}
	if limit == 0 && len(k.Limits) > 0 {
		limit = k.Limits[0].OpsPerSec
	}
	maxY := limit
	if len(k.LimitSamples) > 0 {
		maxY = max(maxY, slices.Max(k.LimitSamples))
	}
	minC, maxC := math.MaxInt, 1
	for _, p := range k.Paths {
		for _, pt := range p.Points {
			maxY = max(maxY, pt.Throughput)
			minC, maxC = min(minC, pt.Workers), max(maxC, pt.Workers)
		}
	}
	if minC == math.MaxInt || maxY <= 0 {
		return
	}
	step := niceStep(maxY * 1.1 / 5)
	top5 := math.Ceil(maxY*1.1/step) * step
	x := func(c int) int {
		if maxC == minC {
			return (left + right) / 2
		}
		f := (math.Log2(float64(c)) - math.Log2(float64(minC))) / (math.Log2(float64(maxC)) - math.Log2(float64(minC)))
		return left + int(f*float64(right-left))
	}
	y := func(v float64) int { return bottom - int(v/top5*float64(bottom-top)) }

	// The crypto limit's range over the run (it is re-measured before every
	// point) as a band behind everything.
	if len(k.LimitSamples) > 1 {
		lo, hi := slices.Min(k.LimitSamples), slices.Max(k.LimitSamples)
		fill(img, image.Rect(left+1, y(hi), right, y(lo)+1), color.RGBA{240, 240, 240, 255})
	}
	// Grid and y ticks.
	for v := 0.0; v <= top5+step/2; v += step {
		yy := y(v)
		hline(img, left, right, yy, lightGrey)
		label := fmtCount(v)
		text(img, left-8-textWidth(label, 2), yy-7, label, 2, black)
	}
	// x ticks at each measured worker count.
	seen := map[int]bool{}
	for _, p := range k.Paths {
		for _, pt := range p.Points {
			if seen[pt.Workers] {
				continue
			}
			seen[pt.Workers] = true
			xx := x(pt.Workers)
			vline(img, xx, top, bottom, lightGrey)
			label := fmt.Sprint(pt.Workers)
			text(img, xx-textWidth(label, 2)/2, bottom+8, label, 2, black)
		}
	}
	hline(img, left, right, bottom, black)
	vline(img, left, top, bottom, black)
	text(img, left, r.Min.Y+12, strings.ToUpper(k.Label)+": REQ/S VS WORKERS", 2, black)
	xl := "CLOSED-LOOP WORKERS (LOG SCALE)"
	text(img, (left+right-textWidth(xl, 2))/2, bottom+30, xl, 2, black)

	if limit > 0 {
		yy := y(limit)
		for xx := left; xx < right; xx += 12 {
			hline(img, xx, min(xx+6, right), yy, grey)
			hline(img, xx, min(xx+6, right), yy+1, grey)
		}
		label := "CRYPTO LIMIT " + fmtCount(limit) + " (MEAN, BAND = RANGE)"
		text(img, right-textWidth(label, 2)-4, yy-18, label, 2, grey)
	}
	// Lines, then the legend (a row under the title, clear of the plot).
	lx := left
	for _, p := range k.Paths {
		c := pathColor[p.Path]
		for i, pt := range p.Points {
			px, py := x(pt.Workers), y(pt.Throughput)
			fill(img, image.Rect(px-3, py-3, px+4, py+4), c)
			if i > 0 {
				prev := p.Points[i-1]
				line(img, x(prev.Workers), y(prev.Throughput), px, py, c)
			}
		}
		ly := r.Min.Y + 36
		fill(img, image.Rect(lx, ly+5, lx+24, ly+9), c)
		text(img, lx+30, ly, shortPath(p.Path), 2, c)
		lx += 30 + textWidth(shortPath(p.Path), 2) + 24
	}
}

// niceStep rounds a raw axis step to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtCount(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fK", v/1000)
	case v >= 1000 && math.Mod(v, 1000) != 0:
		return fmt.Sprintf("%.1fK", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.0fK", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for yy := r.Min.Y; yy < r.Max.Y; yy++ {
		for xx := r.Min.X; xx < r.Max.X; xx++ {
			img.SetRGBA(xx, yy, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1+1, y+1), c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1+1), c) }

// line draws a 2-pixel-thick segment (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fill(img, image.Rect(x0, y0, x0+2, y0+2), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// text draws s in the 5x7 font, scale pixels per dot; unknown runes are blank.
func text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for i, r := range strings.ToUpper(s) {
		g, ok := font5x7[r]
		if !ok {
			continue
		}
		for row, bits := range g {
			for col := 0; col < 5; col++ {
				if bits[col] == '#' {
					ox, oy := x+(i*6+col)*scale, y+row*scale
					fill(img, image.Rect(ox, oy, ox+scale, oy+scale), c)
				}
			}
		}
	}
}

var font5x7 = map[rune][7]string{
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	'%': {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
}
