package main

import (
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100..1, unsorted
	}
	if got := percentile(xs, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if got := percentile(xs, 100); got != 100 {
		t.Errorf("p100 of 1..100 = %v, want 100", got)
	}
	if got := percentile([]float64{5}, 99); got != 5 {
		t.Errorf("p99 of one sample = %v, want it", got)
	}
}

func TestTableMissingFiguresAndRatios(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []string{"vigil", "tini"}, [][2]string{{"vigil", "tini"}, {"vigil", "absent"}}, []row{
		{label: "a", format: "%.1f", values: map[string]float64{"vigil": 3, "tini": 2}},
		{label: "b", format: "%.0f", values: map[string]float64{"vigil": 1, "tini": 0}},
		{label: "c", format: "%.0f", values: map[string]float64{"vigil": math.NaN()}},
	})
	want := `| scenario | vigil | tini | vigil/tini |
|---|--:|--:|--:|
| a | 3.0 | 2.0 | 1.50x |
| b | 1 | 0 | n/a |
| c | n/a | n/a | n/a |
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
