//go:build !h1portablewatch

package h1

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// watcher notices a client leaving while a handler runs. Once the handler
// has run for one to two ticks of watchAfter with its request body read,
// the connection joins an epoll set that one goroutine of the process
// waits on for the peer's close (EPOLLRDHUP, EPOLLHUP, EPOLLERR); that
// cancels the request. Most answers are done before the first tick and
// cost a lock and an append; a held stream costs no goroutine and no
// buffer, and a watched request two epoll_ctl calls.
type watcher struct {
	c         *srvConn
	rc        syscall.RawConn // nil: the connection cannot be watched
	id        uint64
	seq       uint32       // which arm an entry in the poll lists is for (under poll.mu)
	state     atomic.Int32 // watchOff, watchPending, watchRegistering, watchRegistered, watchFired
	watchable atomic.Bool  // the body is read
	ready     bool         // setup done
	ev        syscall.EpollEvent
	op        int
	ctlErr    error
	ctl       func(fd uintptr)
}

const (
	watchOff int32 = iota
	watchPending
	watchRegistering
	watchRegistered
	watchFired
)

// pollEntry is one arm of a watcher, waiting in poll.young or poll.old.
type pollEntry struct {
	w   *watcher
	seq uint32
}

// poll is the process's watch: one epoll set, the watchers armed in the
// current tick (young) and before it (old), and the registered ones by id.
var poll struct {
	once   sync.Once
	epfd   int
	err    error
	mu     sync.Mutex
	young  []pollEntry
	old    []pollEntry
	byID   map[uint64]*watcher
	nextID atomic.Uint64
	kick   chan struct{}
}

func startPoll() {
	poll.epfd, poll.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if poll.err != nil {
		return
	}
	poll.byID = make(map[uint64]*watcher)
	poll.kick = make(chan struct{}, 1)
	go registrar()
	go waitEvents()
}

func (w *watcher) setup() {
	w.ready = true
	poll.once.Do(startPoll)
	if poll.err != nil {
		return
	}
	nc := w.c.nc
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn() // TLS: the peer's close shows on the socket beneath
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	w.rc = rc
	w.id = poll.nextID.Add(1)
	w.ctl = func(fd uintptr) { w.ctlErr = epollCtl(poll.epfd, w.op, int(fd), &w.ev) }
}

// arm starts the watch of a request.
func (w *watcher) arm() {
	if !w.ready {
		w.setup()
	}
	if w.rc == nil {
		return
	}
	w.watchable.Store(false)
	poll.mu.Lock()
	w.seq++
	w.state.Store(watchPending)
	wake := len(poll.young) == 0 && len(poll.old) == 0
	poll.young = append(poll.young, pollEntry{w, w.seq})
	poll.mu.Unlock()
	if wake {
		select {
		case poll.kick <- struct{}{}:
		default:
		}
	}
}

// bodyRead is called once the body is read and no pipelined request is
// buffered: only then is the connection's next event the client's close.
func (w *watcher) bodyRead() { w.watchable.Store(true) }

// stop ends the watch of a request.
func (w *watcher) stop() {
	if w.rc == nil || w.state.CompareAndSwap(watchPending, watchOff) || w.state.Load() == watchOff {
		return
	}
	poll.mu.Lock()
	defer poll.mu.Unlock()
	if s := w.state.Load(); s == watchRegistered || s == watchFired {
		w.op = syscall.EPOLL_CTL_DEL
		_ = w.rc.Control(w.ctl)
		delete(poll.byID, w.id)
	}
	w.state.Store(watchOff)
}

// registrar adds the watchers armed for a tick or more, each tick while
// any are armed.
func registrar() {
	for range poll.kick {
		for {
			time.Sleep(watchAfter)
			if !registerTick() {
				break
			}
		}
	}
}

// registerTick registers the watchers armed before the last tick whose
// bodies are read (the others wait for the next tick) and reports whether
// any are left armed.
func registerTick() bool {
	poll.mu.Lock()
	defer poll.mu.Unlock()
	cur := poll.old
	poll.old = poll.young
	for _, e := range cur {
		w := e.w
		if e.seq != w.seq || w.state.Load() != watchPending {
			continue
		}
		if !w.watchable.Load() {
			poll.old = append(poll.old, e)
			continue
		}
		if !w.state.CompareAndSwap(watchPending, watchRegistering) {
			continue
		}
		w.ev = syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(w.id), Pad: int32(w.id >> 32)}
		w.op = syscall.EPOLL_CTL_ADD
		if err := w.rc.Control(w.ctl); err != nil || w.ctlErr != nil {
			w.state.Store(watchOff)
			continue
		}
		poll.byID[w.id] = w
		w.state.Store(watchRegistered)
	}
	clear(cur)
	poll.young = cur[:0]
	return len(poll.old) > 0
}

// waitEvents cancels the requests of the connections whose clients left.
// It blocks in epoll_wait on a thread of its own.
func waitEvents() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(poll.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		poll.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if w := poll.byID[id]; w != nil && w.state.CompareAndSwap(watchRegistered, watchFired) {
				w.c.peerClosed()
			}
		}
		poll.mu.Unlock()
	}
}

// epollCtl is syscall.EpollCtl made as a raw call: it never blocks (see
// rawConn).
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
