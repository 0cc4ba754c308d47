package svclog

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// BenchmarkTee is the cost per 100-byte line of what a pump does for a
// service with a log_file: the ring and the rotator's queue (the writer
// goroutine and the disk run beside it).
func BenchmarkTee(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 99)
	for _, tc := range []struct {
		name string
		file bool
	}{{"ring", false}, {"ring+file", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ring := NewRing(0)
			var rot *Rotator
			if tc.file {
				var err error
				rot, err = OpenRotator(b.TempDir()+"/b.log", RotatorOptions{MaxSize: 1 << 30, UID: -1, GID: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer rot.Close(context.Background())
			}
			b.SetBytes(int64(len(line) + 1))
			now := time.Now()
			for i := 0; b.Loop(); i++ {
				if i%40 == 0 { // a 4 KiB read of lines shares its time
					now = time.Now()
				}
				ring.AppendText(now, Stdout, line)
				if rot != nil {
					rot.WriteText(now, Stdout, line)
				}
			}
			if rot != nil {
				b.ReportMetric(float64(rot.Stats().Dropped)/float64(b.N), "dropped/line")
			}
		})
	}
}
