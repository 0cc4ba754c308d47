package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// median is the middle of xs (the mean of the two middle ones for an even
// count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile of xs (0 < p <= 100); NaN
// for none.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// row is one scenario of the table: a figure per init, by column name.
type row struct {
	label  string
	format string // fmt verb for one figure, e.g. "%.2f"
	values map[string]float64
}

// ratio is a/b as "1.23x"; "n/a" when either is missing or b is 0.
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// writeTable prints rows as a markdown table with one column per name and
// one ratio column per [numerator, denominator] pair whose names both exist.
func writeTable(w io.Writer, names []string, ratios [][2]string, rows []row) {
	var use [][2]string
	for _, r := range ratios {
		if slices.Contains(names, r[0]) && slices.Contains(names, r[1]) {
			use = append(use, r)
		}
	}
	head := append([]string{"scenario"}, names...)
	for _, r := range use {
		head = append(head, r[0]+"/"+r[1])
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|---%s|\n", strings.Repeat("|--:", len(head)-1))
	for _, r := range rows {
		cells := []string{r.label}
		for _, n := range names {
			v, ok := r.values[n]
			if !ok || math.IsNaN(v) {
				cells = append(cells, "n/a")
				continue
			}
			cells = append(cells, fmt.Sprintf(r.format, v))
		}
		for _, q := range use {
			a, ok := r.values[q[0]]
			if !ok {
				a = math.NaN()
			}
			b, ok := r.values[q[1]]
			if !ok {
				b = math.NaN()
			}
			cells = append(cells, ratio(a, b))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}
