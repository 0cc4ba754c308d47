package svclog

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rss is the resident set of this process, in bytes.
func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm:", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestRingMemory measures what 100 full rings cost (the figure of a
// hundred chatty services): VIGIL_MEASURE=1 go test -run TestRingMemory -v
// ./supervise/svclog/. It allocates some 100 MiB, so it is not part of
// the usual run.
func TestRingMemory(t *testing.T) {
	if os.Getenv("VIGIL_MEASURE") == "" {
		t.Skip("set VIGIL_MEASURE=1 to measure")
	}
	const rings = 100
	text := strings.Repeat("m", 100)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rss(t)
	rs := make([]*Ring, rings)
	start := time.Now()
	for i := range rs {
		rs[i] = NewRing(0)
		for j := 0; j < 2*DefaultRingSize/recSize(text); j++ {
			rs[i].Append(Line{Time: t0, Stream: Stdout, Text: text})
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	rssAfter := rss(t)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	grown := rssAfter - rssBefore
	lines, bytes := rs[0].Len()
	t.Logf("FIGURE %d full rings (%d lines, %d bytes each): heap +%.1f MiB, RSS +%.1f MiB; %d appends of 100 bytes in %v (%.0f ns each)",
		rings, lines, bytes, float64(heap)/(1<<20), float64(grown)/(1<<20), rings*2*DefaultRingSize/recSize(text),
		elapsed.Round(time.Millisecond), float64(elapsed.Nanoseconds())/float64(rings*2*DefaultRingSize/recSize(text)))
	if per := heap / rings; per > DefaultRingSize*11/10 {
		t.Errorf("a full ring costs %d bytes of heap, want about %d", per, DefaultRingSize)
	}
	runtime.KeepAlive(rs)
}

func BenchmarkRingAppend(b *testing.B) {
	for _, size := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(size, "B"), func(b *testing.B) {
			r := NewRing(0)
			l := Line{Time: t0, Stream: Stdout, Text: strings.Repeat("b", size)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.Append(l)
			}
		})
	}
}

// BenchmarkRotator is the sustained rate of a log file: 100-byte lines,
// flushed every 1000 so none is dropped, rotating at 10 MiB with 2 kept.
// The MB/s count the lines' text, not the time stamps.
func BenchmarkRotator(b *testing.B) {
	dir := b.TempDir()
	r, err := OpenRotator(dir+"/bench.log", RotatorOptions{MaxSize: 10 << 20, MaxFiles: 2, UID: -1, GID: -1})
	if err != nil {
		b.Fatal(err)
	}
	l := Line{Time: time.Now(), Stream: Stdout, Text: strings.Repeat("r", 100)}
	ctx := b.Context()
	b.SetBytes(int64(len(l.Text)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Write(l)
		if i++; i%1000 == 0 {
			r.Flush(ctx)
		}
	}
	if err := r.Close(ctx); err != nil {
		b.Fatal(err)
	}
	st := r.Stats()
	b.ReportMetric(float64(st.Dropped), "dropped")
	b.ReportMetric(float64(st.Rotations), "rotations")
	if st.Written+st.Dropped != uint64(i) {
		b.Fatalf("stats %+v for %d lines", st, i)
	}
}
