package svclog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Unix(1764680000, 0)

func line(i int, text string) Line {
	s := Stdout
	if i%3 == 0 {
		s = Stderr
	}
	return Line{Time: t0.Add(time.Duration(i) * time.Millisecond), Stream: s, Text: text}
}

// recSize is what a line costs in a ring.
func recSize(text string) int {
	n := len(text)
	h := fixedHeader + 1
	for v := n; v >= 0x80; v >>= 7 {
		h++
	}
	return h + n
}

// model is the ring's contract, written the slow way: the newest lines
// whose records fit in size bytes.
func model(all []Line, size int) []Line {
	used, i := 0, len(all)
	for i > 0 && used+recSize(all[i-1].Text) <= size {
		used += recSize(all[i-1].Text)
		i--
	}
	return all[i:]
}

func sameLines(t *testing.T, got, want []Line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) || got[i].Stream != want[i].Stream || got[i].Text != want[i].Text {
			t.Fatalf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRingKeepsTheNewestLinesThatFit(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		texts func(i int) string
		n     int
	}{
		{"a few lines, nothing dropped", 1 << 20, func(i int) string { return fmt.Sprint("line ", i) }, 10},
		{"empty lines", 4096, func(int) string { return "" }, 1000},
		{"short lines wrap many times", 4096, func(i int) string { return strings.Repeat("x", i%50) }, 5000},
		{"lines of every length up to the ring", 8192, func(i int) string { return strings.Repeat("y", (i*977)%9000) }, 300},
		{"growth from a small buffer to max", 1 << 20, func(i int) string { return strings.Repeat("z", 100+i%200) }, 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.size)
			var all []Line
			for i := range tc.n {
				l := line(i, tc.texts(i))
				if lim := tc.size - maxHeader; len(l.Text) > lim {
					l.Text = l.Text[:lim]
				}
				all = append(all, l)
				r.Append(l)
				if i%997 == 0 {
					sameLines(t, r.Last(-1), model(all, tc.size))
				}
			}
			want := model(all, tc.size)
			sameLines(t, r.Last(-1), want)
			sameLines(t, r.Last(3), want[max(0, len(want)-3):])
			if got := r.Last(0); len(got) != 0 {
				t.Errorf("Last(0) = %d lines", len(got))
			}
			lines, bytes := r.Len()
			if lines != len(want) || bytes > tc.size {
				t.Errorf("Len = %d lines, %d bytes; want %d lines, <= %d bytes", lines, bytes, len(want), tc.size)
			}
		})
	}
}

func TestRingCutsALineTooLongForIt(t *testing.T) {
	r := NewRing(2048)
	r.Append(line(1, strings.Repeat("a", 5000)))
	got := r.Last(-1)
	if len(got) != 1 || len(got[0].Text) != 2048-maxHeader || strings.Trim(got[0].Text, "a") != "" {
		t.Fatalf("got %d lines, first of %d bytes", len(got), len(got[0].Text))
	}
}

func TestFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("starts with the last n lines, then gets new ones in order", func(t *testing.T) {
		r := NewRing(0)
		for i := range 5 {
			r.Append(line(i, fmt.Sprint(i)))
		}
		f := r.Follow(2)
		got, lost, err := f.Next(ctx, 0)
		if err != nil || lost != 0 || len(got) != 2 || got[0].Text != "3" || got[1].Text != "4" {
			t.Fatalf("got %v, lost %d, %v", got, lost, err)
		}
		done := make(chan []Line)
		go func() {
			var seen []Line
			for len(seen) < 100 {
				ls, lost, err := f.Next(ctx, 7)
				if err != nil || lost != 0 || len(ls) > 7 {
					t.Errorf("Next: %d lines, lost %d, %v", len(ls), lost, err)
					break
				}
				seen = append(seen, ls...)
			}
			done <- seen
		}()
		var want []Line
		for i := range 100 {
			l := line(i, fmt.Sprint("new ", i))
			want = append(want, l)
			r.Append(l)
		}
		sameLines(t, <-done, want)
	})

	t.Run("a slow follower never blocks Append; it is told how many it lost", func(t *testing.T) {
		r := NewRing(4096)
		f := r.Follow(0)
		const n = 10000
		for i := range n {
			r.Append(line(i, fmt.Sprintf("%05d", i)))
		}
		got, lost, err := f.Next(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if lost+uint64(len(got)) != n || lost == 0 {
			t.Fatalf("got %d lines and lost %d, want %d in all", len(got), lost, n)
		}
		if got[len(got)-1].Text != fmt.Sprintf("%05d", n-1) || got[0].Text != fmt.Sprintf("%05d", lost) {
			t.Errorf("lines %q .. %q after %d lost", got[0].Text, got[len(got)-1].Text, lost)
		}
	})

	t.Run("Next ends with its context and with Close", func(t *testing.T) {
		r := NewRing(0)
		f := r.Follow(0)
		short, stop := context.WithCancel(ctx)
		stop()
		if _, _, err := f.Next(short, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: got %v", err)
		}
		r.Append(line(1, "last"))
		errc := make(chan error, 1)
		go func() {
			got, _, err := f.Next(ctx, 0)
			if err != nil || len(got) != 1 {
				errc <- fmt.Errorf("the line before Close: %v %v", got, err)
				return
			}
			_, _, err = f.Next(ctx, 0)
			errc <- err
		}()
		r.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: got %v, want ErrClosed", err)
		}
	})

	t.Run("many followers and a writer under the race detector", func(t *testing.T) {
		r := NewRing(8192)
		var wg sync.WaitGroup
		const n = 5000
		for range 4 {
			f := r.Follow(0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var count, last uint64
				for count < n {
					ls, lost, err := f.Next(ctx, 0)
					if err != nil {
						t.Error(err)
						return
					}
					count += lost + uint64(len(ls))
					for _, l := range ls {
						var v uint64
						fmt.Sscan(l.Text, &v)
						if v < last {
							t.Errorf("out of order: %d after %d", v, last)
						}
						last = v
					}
				}
			}()
		}
		for i := range n {
			r.Append(line(i, fmt.Sprint(i)))
		}
		wg.Wait()
	})
}

func TestRingHandoff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 50, 3000} {
		r := NewRing(16 << 10)
		for i := range n {
			r.Append(line(i, strings.Repeat("w", rng.IntN(300))))
		}
		b, err := r.AppendBinary([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		got, rest, err := DecodeRing(append(b[len("prefix"):], "after"...))
		if err != nil {
			t.Fatalf("%d lines: %v", n, err)
		}
		if string(rest) != "after" {
			t.Errorf("rest = %q", rest)
		}
		sameLines(t, got.Last(-1), r.Last(-1))
		// The decoded ring goes on as the old one would.
		for i := range 200 {
			l := line(n+i, strings.Repeat("v", rng.IntN(300)))
			r.Append(l)
			got.Append(l)
		}
		sameLines(t, got.Last(-1), r.Last(-1))
	}
	t.Run("damaged input is refused", func(t *testing.T) {
		r := NewRing(4096)
		r.Append(line(1, "hello"))
		r.Append(line(2, "world"))
		good, _ := r.AppendBinary(nil)
		for _, tc := range []struct {
			name string
			b    []byte
		}{
			{"empty", nil},
			{"bad version", append([]byte{9}, good[1:]...)},
			{"cut", good[:len(good)-1]},
			// "world" is the last record: 9 + 1 + 5 bytes, its stream at 8.
			{"bad stream", func() []byte { b := append([]byte(nil), good...); b[len(b)-15+8] = 7; return b }()},
		} {
			if _, _, err := DecodeRing(tc.b); err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
		}
	})
}

func FuzzRingDecode(f *testing.F) {
	// A small seed: the engine minimizes every new input it finds, in
	// steps that grow with the input's size, and a 2 KiB seed kept it
	// minimizing for most of a run.
	r := NewRing(1024)
	for i := range 6 {
		r.Append(line(i, strings.Repeat("q", i*3)))
	}
	seed, _ := r.AppendBinary(nil)
	f.Add(seed)
	f.Add([]byte{1, 0x80, 0x08, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := DecodeRing(b)
		if err != nil {
			return
		}
		lines := r.Last(-1)
		again, _ := r.AppendBinary(nil)
		r2, rest, err := DecodeRing(again)
		if err != nil || len(rest) != 0 {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(r2.Last(-1), lines) {
			t.Fatal("re-encoding changed the lines")
		}
		r.Append(Line{Stream: Stdout, Text: "more"}) // must not panic
	})
}

// EncodedLen sizes the handoff in one allocation: it must be exact.
func TestRingEncodedLen(t *testing.T) {
	for _, n := range []int{0, 1, 100, 50000} {
		r := NewRing(64 << 10)
		for i := range n {
			r.Append(Line{Time: time.Unix(int64(i), 0), Stream: Stdout, Text: strings.Repeat("y", i%300)})
		}
		b, _ := r.AppendBinary([]byte("prefix"))
		if got, want := r.EncodedLen(), len(b)-len("prefix"); got != want {
			t.Errorf("%d lines: EncodedLen %d, AppendBinary appended %d", n, got, want)
		}
	}
}
