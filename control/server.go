package control

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/control/verb"
	"golang.org/x/sys/unix"
)

// Handler is what the running vigil does for each verb. Every method may
// block until the action took effect (start waits for ready/exited, stop for
// the whole group gone, ...); ctx carries the deadline (the verb's Timeout) and is
// cancelled by Server.Close. An error is the reason shown to the user; wrap
// ErrUnknown for an unknown service name. Methods are called from many
// goroutines at once.
type Handler interface {
	Status(ctx context.Context, names []string) ([]ServiceStatus, error)
	Start(ctx context.Context, names []string) error
	Stop(ctx context.Context, names []string) error
	Restart(ctx context.Context, names []string) error
	Signal(ctx context.Context, sig syscall.Signal, names []string) error
	Reload(ctx context.Context) error
	Ready(ctx context.Context, names []string) (bool, error) // false, nil = not ready
	Reset(ctx context.Context, names []string) error
	Reexec(ctx context.Context) error
	// Scale runs n copies of the service with instances called name.
	Scale(ctx context.Context, name string, n int) error
	// Logs sends the lines asked for through send, in batches, and with
	// Follow goes on sending new ones until ctx ends (the client hung up,
	// the server closes), then returns nil. send fails once the client
	// cannot take more; Logs then returns.
	Logs(ctx context.Context, req LogsRequest, send func(LogBatch) error) error
}

// Limits of the server; variables so tests can shrink them.
var (
	// requestTimeout is how long a connection has to send its whole request.
	requestTimeout = 5 * time.Second
	// replyTimeout bounds writing the reply (a client that does not read).
	replyTimeout = 5 * time.Second
	// maxConns is how many requests are handled at once; one more gets a
	// "busy" reply at once rather than waiting. probeSlots more are kept
	// for status and ready, so that probes are answered while start, stop
	// and the like wait on services.
	maxConns   = 128
	probeSlots = 16
	// maxFollowers is how many `vigil logs -f` may follow at once: each
	// holds its connection for as long as it likes, so they have slots of
	// their own rather than taking the verbs'.
	maxFollowers = 16
	// maxReaders is how many connections may be sending their request at
	// once. One more closes the one that has been at it longest (with a
	// "busy" reply): idle connections cannot keep a probe out, and a probe
	// sends its request at once.
	maxReaders = 512
	// warnEvery is the least time between two log lines of one kind about
	// refused, busy or bad connections; the lines held back are counted in
	// the next one.
	warnEvery = time.Second
	// closeWait bounds how long Close waits for requests in flight.
	closeWait = 2 * time.Second
)

// Server is a listening control socket.
type Server struct {
	// OnPanic, if set before Serve, is called after a Handler method panicked
	// (the panic is recovered, logged and answered with an error reply), from
	// that connection's goroutine: e.g. to re-exec (docs/state-and-reexec.md).
	OnPanic func(recovered any, stack []byte)

	ln       *net.UnixListener
	path     string
	dev, ino uint64

	ctx    context.Context
	cancel context.CancelFunc

	rule peerRule

	mu        sync.Mutex
	closed    bool
	conns     map[*net.UnixConn]struct{}
	readers   *list.List // of *reading, the oldest first
	wg        sync.WaitGroup
	sem       chan struct{}
	probes    chan struct{} // probeSlots, for status and ready only
	followers chan struct{} // maxFollowers, for logs -f only

	refusedLog, busyLog, badLog, replacedLog limiter

	guardOnce sync.Once
	watch     *os.File // inotify on the socket's directory, if shared; s.mu

	closeOnce sync.Once
	closeErr  error
	paused    atomic.Bool
	loops     sync.WaitGroup // the Serve loop running: Pause waits for it
	serving   atomic.Bool    // one Serve loop at a time
}

var errInUse = errors.New("another vigil is listening there")

// errTaken marks a socket path someone else holds: a file of another user
// (a live socket, a dead one vigil may not remove) or no socket at all.
var errTaken = errors.New("taken by someone else")

// Listen creates the socket at the first usable path of SocketPaths(explicit):
// with explicit, only there (its parent directory made 0700 if missing);
// otherwise /run/vigil/vigil.sock, making /run (0755) if missing and
// /run/vigil 0700 (an existing /run/vigil must be a directory owned by
// vigil's uid; it is set to 0700), and if that fails /dev/shm/vigil-<ino>.sock;
// if someone else holds that name (the inode is predictable), a socket in a
// new 0700 directory /dev/shm/vigil-<ino>-<random>/, which clients look for
// (see call).
// The socket is mode 0600 from the moment it exists (the mode is set on the
// socket before bind, and it is inside a 0700 directory where possible). A
// stale socket file (nothing answers on it) is removed first; a live one is an
// error, never a reason to fall back; a file that is no socket is left alone.
func Listen(explicit string) (*Server, error) {
	if explicit != "" {
		dir := filepath.Dir(explicit)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("control socket: %w", err)
			}
			if err := os.Chmod(dir, 0o700); err != nil {
				return nil, fmt.Errorf("control socket: %w", err)
			}
		}
		s, err := listenAt(explicit)
		if err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		return s, nil
	}
	paths := SocketPaths("")
	var errs []error
	for i, p := range paths {
		var err error
		if i == 0 {
			err = prepareRunDir(filepath.Dir(p))
		}
		var s *Server
		if err == nil {
			if s, err = listenAt(p); err == nil {
				return s, nil
			}
			if errors.Is(err, errInUse) {
				return nil, fmt.Errorf("control socket: %w", err)
			}
		}
		errs = append(errs, err)
		if i == 1 && errors.Is(err, errTaken) {
			// A squatter at the predictable name must not leave vigil
			// without a socket.
			if s, err = listenPrivateShm(p); err == nil {
				return s, nil
			}
			errs = append(errs, err)
		}
	}
	if len(paths) < 2 {
		errs = append(errs, fmt.Errorf("no /dev/shm fallback: cannot read the inode of %s", mntNS))
	}
	return nil, fmt.Errorf("control socket: %w", errors.Join(errs...))
}

// prepareRunDir makes dir (/run/vigil) a 0700 directory of ours, creating
// its parent (/run) if missing.
func prepareRunDir(dir string) error {
	parent := filepath.Dir(dir)
	if _, err := os.Lstat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%s: owned by uid %d, not by vigil's uid %d", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// listenPrivateShm listens in a new 0700 directory next to name (the
// /dev/shm socket someone else holds): name less ".sock", a dash and a
// random suffix.
func listenPrivateShm(name string) (*Server, error) {
	dir, err := os.MkdirTemp(filepath.Dir(name), strings.TrimSuffix(filepath.Base(name), ".sock")+"-")
	if err != nil {
		return nil, err
	}
	s, err := listenAt(filepath.Join(dir, socketName))
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return s, nil
}

// listenAt binds and listens on path, removing a stale socket first.
func listenAt(path string) (*Server, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("%s: path too long for a Unix socket (max %d bytes)", path, len(unix.RawSockaddrUnix{}.Path)-1)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", path, err)
	}
	// Linux gives the socket file the mode of the socket inode (less the
	// umask): set it first, so the file is never open to others.
	if err := unix.Fchmod(fd, 0o600); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: fchmod: %w", path, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %w", path, errInUse)
		}
		return nil, fmt.Errorf("%s: bind: %w", path, err)
	}
	fail := func(err error) (*Server, error) {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fail(errors.New("no stat data"))
	}
	if fi.Mode().Perm() != 0o600 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fail(err)
		}
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail(fmt.Errorf("listen: %w", err))
	}
	f := os.NewFile(uintptr(fd), path)
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("%s: not a Unix listener", path)
	}
	return newServer(ln, path, uint64(st.Dev), st.Ino), nil
}

// removeStale removes a socket file of vigil's uid (or root's) nothing
// answers on. A live one is errInUse. Anything else is left alone and
// errTaken: not a socket, or another user's socket, live or not (it is not
// even connected to: a squatter could make that hang).
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (left alone): %w", path, errTaken)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%s is a socket of uid %d (left alone): %w", path, st.Uid, errTaken)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, errInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: checking for a stale socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("removing stale socket: %w: %w", err, errTaken)
		}
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// Path is where the socket is.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close, then returns nil. Each connection
// is served in its own goroutine (at most maxConns at once; one more gets a
// "busy" error reply): its peer must be root or the server's own uid
// (SO_PEERCRED), else it gets an error reply and a warn line in log; then one
// request is read (whole within requestTimeout, at most MaxRequest bytes),
// the Handler called and one reply written. log may be nil.
func (s *Server) Serve(h Handler, log *slog.Logger) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errAlreadyServing
	}
	s.loops.Add(1)
	defer func() {
		s.serving.Store(false)
		s.loops.Done()
	}()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.guardOnce.Do(func() { s.guard(log) })
	var delay time.Duration
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return nil
			}
			if s.paused.Load() {
				return nil // Pause: the listener stays open, unserved
			}
			// EMFILE and the like: back off as net/http does, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("control socket: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		// The peer is checked before it takes anything: a refused user
		// gets its answer here, without a goroutine or a slot.
		cred, err := peerCred(c)
		if err != nil {
			s.warn(&s.refusedLog, log, slog.LevelWarn, "control socket: cannot read the peer's credentials, refusing", "err", err)
			refuse(c, reply{Error: "cannot check your credentials"})
			continue
		}
		if !s.rule.allowed(cred.Uid) {
			s.warn(&s.refusedLog, log, slog.LevelWarn, "control socket: refused a connection from another user", "uid", cred.Uid, "pid", cred.Pid)
			refuse(c, reply{Error: fmt.Sprintf("permission denied: uid %d may not use vigil's control socket (only root and uid %d)", cred.Uid, s.rule.self)})
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		r := s.admit(c)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				s.wg.Done()
			}()
			s.serveConn(r, cred, h, log)
		}()
	}
}

// reading is a connection whose request is not read yet.
type reading struct {
	c       *net.UnixConn
	el      *list.Element
	evicted bool
}

// admit adds c to the readers, first closing the oldest one if there are
// maxReaders already; s.mu held.
func (s *Server) admit(c *net.UnixConn) *reading {
	if s.readers.Len() >= maxReaders {
		old := s.readers.Remove(s.readers.Front()).(*reading)
		old.evicted = true
		old.c.SetReadDeadline(time.Now())
	}
	r := &reading{c: c}
	r.el = s.readers.PushBack(r)
	return r
}

// doneReading takes r off the readers and reports whether it was evicted.
func (s *Server) doneReading(r *reading) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.evicted {
		return true
	}
	s.readers.Remove(r.el)
	return false
}

// slot takes a handler slot for verb: any of maxConns, or for a probe
// (status, ready) one of probeSlots when those are taken. ok false: none.
func (s *Server) slot(req request) (release func(), ok bool) {
	name := req.Verb
	if name == verbLogs && req.Follow {
		select {
		case s.followers <- struct{}{}:
			return func() { <-s.followers }, true
		default:
			return nil, false
		}
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, true
	default:
	}
	if v, _ := remote(name); v.Probe {
		select {
		case s.probes <- struct{}{}:
			return func() { <-s.probes }, true
		default:
		}
	}
	return nil, false
}

// warn logs through the limiter l.
func (s *Server) warn(l *limiter, log *slog.Logger, lvl slog.Level, msg string, args ...any) {
	ok, held := l.allow(time.Now())
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	log.Log(context.Background(), lvl, msg, args...)
}

// refuse answers and closes a connection from the accept loop: the reply
// is small and the connection new, so its buffer takes it without waiting;
// the deadline is for the impossible case.
func refuse(c *net.UnixConn, rep reply) {
	rep.V = Version
	b, _ := json.Marshal(rep)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write(append(b, '\n'))
	c.Close()
}

var errBusy = reply{Error: "vigil is busy: too many control connections at once, try again"}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

func (s *Server) serveConn(r *reading, cred *unix.Ucred, h Handler, log *slog.Logger) {
	c := r.c
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(c)
	if s.doneReading(r) && s.ctx.Err() == nil {
		s.warn(&s.busyLog, log, slog.LevelWarn, "control socket: too many connections at once, closed the longest idle one",
			"max", maxReaders, "pid", cred.Pid, "uid", cred.Uid)
		writeReply(c, errBusy)
		return
	}
	if err != nil {
		// A client that connects and hangs up without a word (a probe of
		// the socket, a client that decided not to trust it) is no alarm.
		lvl := slog.LevelWarn
		if err.Error() == "empty request" {
			lvl = slog.LevelDebug
		}
		s.warn(&s.badLog, log, lvl, "control socket: bad request", "pid", cred.Pid, "uid", cred.Uid, "err", err)
		writeReply(c, reply{Error: "bad request: " + err.Error()})
		return
	}
	release, ok := s.slot(req)
	if !ok {
		s.warn(&s.busyLog, log, slog.LevelWarn, "control socket: too many connections at once, refusing one",
			"max", cap(s.sem), "verb", req.Verb)
		writeReply(c, errBusy)
		return
	}
	defer release()
	c.SetReadDeadline(time.Time{})
	if req.Verb == verbLogs {
		s.serveLogs(c, h, req, log)
		return
	}
	writeReply(c, s.dispatch(h, req, log))
}

// serveLogs answers logs with several replies (see the package
// documentation). A follower ends when the client hangs up (its side of
// the connection is read for that: a client sends nothing after its
// request), when a reply cannot be written within replyTimeout (a client
// that stopped reading must not hold its slot for ever), or at Close.
func (s *Server) serveLogs(c *net.UnixConn, h Handler, req request, log *slog.Logger) {
	if rep, ok := s.check(req); !ok {
		writeReply(c, rep)
		return
	}
	if req.Lines < 0 {
		writeReply(c, reply{Error: fmt.Sprintf("bad line count %d", req.Lines)})
		return
	}
	row, _ := remote(req.Verb)
	var ctx context.Context
	var cancel context.CancelFunc
	if req.Follow {
		ctx, cancel = context.WithCancel(s.ctx)
		go func() {
			defer cancel()
			var b [512]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					return
				}
			}
		}()
	} else {
		ctx, cancel = context.WithTimeout(s.ctx, row.Timeout)
	}
	defer cancel()
	var failed error
	send := func(b LogBatch) error {
		if failed != nil {
			return failed
		}
		if failed = ctx.Err(); failed != nil {
			return failed
		}
		if failed = writeMsg(c, reply{OK: true, More: true, Logs: b.Lines, Notes: b.Notes}); failed != nil {
			cancel()
		}
		return failed
	}
	err := s.guarded(req, log, func() error {
		return h.Logs(ctx, LogsRequest{Names: req.Names, Lines: req.Lines, Follow: req.Follow, Since: req.Since}, send)
	})
	switch {
	case failed != nil:
		// The client is gone or not reading: nothing more to say.
	case err != nil:
		writeReply(c, errReply(err))
	default:
		writeReply(c, reply{OK: true})
	}
}

// guarded runs f, turning a panic into an error as dispatch does.
func (s *Server) guarded(req request, log *slog.Logger, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			log.Error("control socket: panic in a handler", "verb", req.Verb, "panic", fmt.Sprint(v), "stack", string(stack))
			err = fmt.Errorf("internal error: %v", v)
			if s.OnPanic != nil {
				s.OnPanic(v, stack)
			}
		}
	}()
	return f()
}

func readRequest(c net.Conn) (request, error) {
	var req request
	br := bufio.NewReaderSize(io.LimitReader(c, MaxRequest+1), 4096)
	line, err := br.ReadBytes('\n')
	if len(line) > MaxRequest {
		return req, fmt.Errorf("larger than %d bytes", MaxRequest)
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return req, fmt.Errorf("no complete request within %s", requestTimeout)
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0:
			// A last line without '\n' (e.g. printf ... | socat) is fine.
		case errors.Is(err, io.EOF):
			return req, errors.New("empty request")
		default:
			return req, err
		}
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("not a JSON request object: %v", err)
	}
	return req, nil
}

func writeReply(c net.Conn, rep reply) { writeMsg(c, rep) }

// writeMsg writes one reply line within replyTimeout.
func writeMsg(c net.Conn, rep reply) error {
	rep.V = Version
	b, err := json.Marshal(rep)
	if err != nil {
		b, _ = json.Marshal(reply{V: Version, Error: "cannot encode the reply: " + err.Error()})
	}
	c.SetWriteDeadline(time.Now().Add(replyTimeout))
	_, err = c.Write(append(b, '\n'))
	return err
}

func errReply(err error) reply {
	return reply{Error: err.Error(), Unknown: errors.Is(err, ErrUnknown)}
}

// check refuses a request no verb may take: a wrong version, an unknown
// verb, names where there must be none or none where some are needed.
func (s *Server) check(req request) (reply, bool) {
	if req.V != 0 && req.V != Version {
		return reply{Error: fmt.Sprintf("protocol version %d not supported (this vigil speaks %d)", req.V, Version)}, false
	}
	row, ok := remote(req.Verb)
	if !ok {
		return reply{Error: fmt.Sprintf("unknown verb %q", req.Verb)}, false
	}
	for _, n := range req.Names {
		if n == "" {
			return reply{Error: "empty service name"}, false
		}
	}
	switch row.Names {
	case verb.SomeNames:
		if len(req.Names) == 0 {
			return reply{Error: req.Verb + " needs at least one service name"}, false
		}
	case verb.NoNames:
		if len(req.Names) != 0 {
			return reply{Error: req.Verb + " takes no service names"}, false
		}
	}
	if req.Verb == verbSignal && (req.Signal < 1 || req.Signal > 64) {
		return reply{Error: fmt.Sprintf("bad signal number %d", req.Signal)}, false
	}
	if req.Verb == verbScale && (len(req.Names) != 1 || req.Count < 1) {
		return reply{Error: "scale takes one service name and a count of at least 1"}, false
	}
	return reply{}, true
}

// dispatch checks a request and runs it through h.
func (s *Server) dispatch(h Handler, req request, log *slog.Logger) (rep reply) {
	if rep, ok := s.check(req); !ok {
		return rep
	}
	row, _ := remote(req.Verb)
	timeout := row.Timeout
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			log.Error("control socket: panic in a handler", "verb", req.Verb, "panic", fmt.Sprint(v), "stack", string(stack))
			rep = reply{Error: fmt.Sprintf("internal error: %v", v)}
			if s.OnPanic != nil {
				s.OnPanic(v, stack)
			}
		}
	}()
	var err error
	switch req.Verb {
	case verbStatus:
		var list []ServiceStatus
		if list, err = h.Status(ctx, req.Names); err == nil {
			return reply{OK: true, Services: list}
		}
	case verbReady:
		var ready bool
		if ready, err = h.Ready(ctx, req.Names); err == nil {
			return reply{OK: true, Ready: &ready}
		}
	case verbStart:
		err = h.Start(ctx, req.Names)
	case verbStop:
		err = h.Stop(ctx, req.Names)
	case verbRestart:
		err = h.Restart(ctx, req.Names)
	case verbSignal:
		err = h.Signal(ctx, syscall.Signal(req.Signal), req.Names)
	case verbReload:
		err = h.Reload(ctx)
	case verbReset:
		err = h.Reset(ctx, req.Names)
	case verbReexec:
		err = h.Reexec(ctx)
	case verbScale:
		err = h.Scale(ctx, req.Names[0], req.Count)
	case verbLogs:
		// The connection's logs go through serveLogs; this is the same
		// answer in one reply, without following.
		var all LogBatch
		err = h.Logs(ctx, LogsRequest{Names: req.Names, Lines: req.Lines, Since: req.Since}, func(b LogBatch) error {
			all.Lines = append(all.Lines, b.Lines...)
			all.Notes = append(all.Notes, b.Notes...)
			return nil
		})
		if err == nil {
			return reply{OK: true, Logs: all.Lines, Notes: all.Notes}
		}
	}
	if err != nil {
		return errReply(err)
	}
	return reply{OK: true}
}

// Close stops serving: the socket file is removed (if it is still the one
// Listen made), the listener closed, the contexts of requests in flight
// cancelled, and Close waits up to closeWait for their replies. Safe to call
// more than once and concurrently with Serve.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.SetReadDeadline(time.Now()) // end requests still being read
		}
		w := s.watch
		s.mu.Unlock()
		if w != nil {
			w.Close() // first: removing the socket below is no alarm
		}
		s.removeFile()
		s.closeErr = s.ln.Close()
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeWait):
		}
	})
	return s.closeErr
}

// Leave is Close for a process about to exit: with no connection in
// flight it only removes the socket file, so that no client finds a socket
// nobody answers, and leaves the descriptors to the exit. Closing the
// listener would wake the Serve goroutine on another thread just as the
// process ends (some 60 µs of a wrapper's 1.2 ms shutdown). With a connection
// in flight it is Close, which lets the handler reply first.
func (s *Server) Leave() error {
	s.mu.Lock()
	// A watched directory (one others may write) would take the removal
	// for an attack: Close stops the watch first.
	idle := len(s.conns) == 0 && !s.closed && s.watch == nil
	if idle {
		// Nothing more is admitted: Serve checks closed before it admits.
		s.closed = true
	}
	s.mu.Unlock()
	if !idle {
		return s.Close()
	}
	s.removeFile()
	return nil
}

// removeFile removes the socket file if it is still the one this server
// bound (not a socket another vigil put there since).
func (s *Server) removeFile() {
	if fi, err := os.Lstat(s.path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(st.Dev) == s.dev && st.Ino == s.ino {
			os.Remove(s.path)
			if privateShm(s.path) {
				os.Remove(filepath.Dir(s.path)) // only if empty
			}
		}
	}
}

// Fd is the listening socket's own descriptor, for a re-exec to keep open:
// connections that arrive during the exec wait in its backlog and the new
// vigil answers them.
func (s *Server) Fd() (int, error) {
	rc, err := s.ln.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// Inherit serves on a listening socket an earlier image of this process
// passed across an exec (see Fd); path is where its file is.
func Inherit(fd int, path string) (*Server, error) {
	f := os.NewFile(uintptr(fd), path)
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited control socket %s: %w", path, err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("inherited control socket %s: not a Unix listener", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		ln.Close()
		return nil, fmt.Errorf("inherited control socket %s: %w", path, err)
	}
	// The file stays: it belongs to the listener, whoever holds it.
	ln.SetUnlinkOnClose(false)
	return newServer(ln, path, uint64(st.Dev), st.Ino), nil
}

// newServer serves ln, listening at path, whose file is dev and ino.
func newServer(ln *net.UnixListener, path string, dev, ino uint64) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ln: ln, path: path, dev: dev, ino: ino, rule: currentPeerRule(),
		ctx: ctx, cancel: cancel,
		conns:      make(map[*net.UnixConn]struct{}),
		readers:    list.New(),
		sem:        make(chan struct{}, maxConns),
		probes:     make(chan struct{}, probeSlots),
		followers:  make(chan struct{}, maxFollowers),
		refusedLog: limiter{every: warnEvery},
		busyLog:    limiter{every: warnEvery},
		badLog:     limiter{every: warnEvery},
		// Replacements are worth a line each, but not a flood.
		replacedLog: limiter{every: warnEvery},
	}
}

// errAlreadyServing: Serve was called while a loop already accepts.
var errAlreadyServing = errors.New("control socket: already served")

// Pause stops accepting connections but keeps the socket listening: before
// a re-exec, so clients wait in the backlog for the new image instead of
// being accepted by one about to vanish. It returns once every Serve loop
// has returned, so a Resume and a new Serve after a failed exec never leave
// two loops on one listener.
func (s *Server) Pause() {
	s.paused.Store(true)
	s.ln.SetDeadline(time.Now())
	s.loops.Wait()
}

// Resume undoes Pause; the caller runs Serve again.
func (s *Server) Resume() {
	s.paused.Store(false)
	s.ln.SetDeadline(time.Time{})
}
