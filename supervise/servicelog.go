package supervise

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/supervise/svclog"
)

// svcLog is what vigil keeps of the output of a service whose output passes
// through it: the ring `vigil logs` reads and, with a log_file, the rotator
// writing the file. It lives as long as the service (across its runs,
// reloads that keep it and re-execs) and is shared with its pumps'
// goroutines, which append to it; everything else is the loop's.
type svcLog struct {
	ring *svclog.Ring
	rot  atomic.Pointer[svclog.Rotator]

	// The loop's own: the log_file rot writes and for whom, and the
	// lines dropped by rotators already closed (reopened after a reload).
	file    *config.LogFile
	owner   [2]int // uid, gid of the files rot creates; -1: vigil's
	dropped uint64
}

// passesThrough reports whether svc's output goes through vigil's pumps:
// `log: prefix`, or any service with a log_file (then `inherit` output is
// copied unprefixed). main's output is vigil's own stdout and stderr.
func passesThrough(svc *service) bool {
	return !svc.isMain && (svc.Log == config.LogPrefix || svc.LogFile != nil)
}

// tee is a pump's tee for stream: each whole line goes to the ring and to
// the log file's queue. Neither waits for a reader or a disk: a full queue
// drops the line for the file (counted by the rotator), never for the
// service's own destination.
func (l *svcLog) tee(stream svclog.Stream) func([]byte, time.Time) {
	return func(line []byte, now time.Time) {
		l.ring.AppendText(now, stream, line)
		if r := l.rot.Load(); r != nil {
			r.WriteText(now, stream, line)
		}
	}
}

// fileDropped is how many lines the log file lost so far.
func (l *svcLog) fileDropped() uint64 {
	n := l.dropped
	if r := l.rot.Load(); r != nil {
		n += r.Stats().Dropped
	}
	return n
}

// rotatorClose bounds the wait for a log file's last lines when it is
// closed (a removed service, vigil's exit): a stalled disk must not hold up
// vigil.
const rotatorClose = 2 * time.Second

// openLog gives svc, whose output passes through vigil, its ring (ring, if
// one was handed over by a re-exec) and opens its log file if it has one
// and it is not open yet. A file that cannot be opened is logged; its lines
// go to the ring and the service's destination only, and the next start of
// the service tries again.
func (s *Supervisor) openLog(svc *service, ring *svclog.Ring) {
	if !passesThrough(svc) {
		return
	}
	if svc.log == nil {
		if ring == nil {
			ring = svclog.NewRing(s.ringSize)
		}
		svc.log = &svcLog{ring: ring}
		s.logMemoryChanged()
	}
	s.openFile(svc)
}

// openFile opens svc's log_file (or the one a reload changed it to) with
// the service's user as the owner of the files it creates; without a
// log_file, it closes the one open. A file that cannot be opened leaves
// the one open (if any) in use.
func (s *Supervisor) openFile(svc *service) {
	l := svc.log
	if l == nil {
		return
	}
	if svc.LogFile == nil {
		s.closeFile(svc)
		return
	}
	owner := [2]int{-1, -1}
	if svc.User != "" {
		id, err := s.identity(svc)
		if err != nil {
			s.log.Error("cannot open the log file: unknown user", "service", svc.Name, "path", svc.LogFile.Path, "err", err)
			return
		}
		owner = [2]int{int(id.Credential.Uid), int(id.Credential.Gid)}
	}
	if l.rot.Load() != nil && *svc.LogFile == *l.file && owner == l.owner {
		return
	}
	uid, gid := owner[0], owner[1]
	lf := *svc.LogFile
	r, err := svclog.OpenRotator(lf.Path, svclog.RotatorOptions{
		MaxSize: lf.MaxSize, MaxFiles: lf.MaxFiles, UID: uid, GID: gid,
		Log: s.log.With("service", svc.Name),
	})
	if err != nil {
		s.log.Error("cannot open the log file; tried again at the service's next start", "service", svc.Name, "err", err)
		return
	}
	l.file, l.owner = &lf, owner
	// Swapped, not closed then opened: each line goes to the old file or
	// to the new one, none to neither.
	if old := l.rot.Swap(r); old != nil {
		l.dropped += old.Stats().Dropped
		s.pumps.Go(func() { closeRotator(old) })
	}
}

// closeFile closes svc's log file in the background, its queued lines
// written first unless the disk takes longer than rotatorClose.
func (s *Supervisor) closeFile(svc *service) {
	l := svc.log
	r := l.rot.Swap(nil)
	if r == nil {
		return
	}
	l.dropped += r.Stats().Dropped
	l.file = nil
	s.pumps.Go(func() { closeRotator(r) })
}

func closeRotator(r *svclog.Rotator) {
	ctx, cancel := context.WithTimeout(context.Background(), rotatorClose)
	defer cancel()
	r.Close(ctx)
}

// dropLog ends svc's log when the service is removed: its followers stop,
// its file is closed.
func (s *Supervisor) dropLog(svc *service) {
	if svc.log == nil {
		return
	}
	s.closeFile(svc)
	svc.log.ring.Close()
	svc.log = nil
	s.logMemoryChanged()
}

// closeLogs closes every log file as vigil exits, waiting for their last
// lines at most rotatorClose in all.
func (s *Supervisor) closeLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), rotatorClose)
	defer cancel()
	for _, svc := range s.order {
		if svc.log == nil {
			continue
		}
		if r := svc.log.rot.Swap(nil); r != nil {
			r.Close(ctx)
		}
	}
}

// flushLogs writes out the log files' queues before a re-exec (the new
// image opens the files again and appends): lines a stalled disk has not
// taken by the deadline are lost, and said so.
func (s *Supervisor) flushLogs(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, svc := range s.order {
		if svc.log == nil {
			continue
		}
		if r := svc.log.rot.Load(); r != nil {
			if err := r.Flush(ctx); err != nil {
				s.log.Warn("log file not written out before re-exec: its queued lines are lost", "service", svc.Name, "err", err)
			}
		}
	}
}

// logMemoryChanged tells Options.LogMemory what the rings may take at most
// now.
func (s *Supervisor) logMemoryChanged() { s.logMemory(1) }

// logMemory tells Options.LogMemory copies times what the rings may take
// at most (a re-exec copies them).
func (s *Supervisor) logMemory(copies int64) {
	if s.o.LogMemory == nil {
		return
	}
	n := 0
	for _, svc := range s.order {
		if svc.log != nil {
			n++
		}
	}
	s.o.LogMemory(copies * int64(n) * int64(s.ringSize))
}
