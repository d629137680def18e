package pipe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// acceptBacklog bounds how many dialled pipes may wait for a listener's
// Accept; a Dial that finds the backlog full waits for room until its context
// is done.
const acceptBacklog = 64

// ErrNoListener reports that no listener holds the name a Dial asked for.
// The errors Dial returns for it also satisfy
// errors.Is(err, syscall.ECONNREFUSED), as a refused TCP dial does.
var ErrNoListener = errors.New("no listener")

// ErrNameInUse reports that Listen was asked for a name another listener
// holds. The errors Listen returns for it also satisfy
// errors.Is(err, syscall.EADDRINUSE).
var ErrNameInUse = errors.New("name in use")

// Transport opens in-memory links on network "pipe". Addresses are names in one
// process-wide table: Listen registers a name, Dial connects to the listener
// registered under it. Its zero value is ready to use.
type Transport struct {
	// BufferSize bounds each direction of the pipes that Dial creates, in
	// bytes. Zero or less means DefaultBufferSize.
	BufferSize int
}

// New returns a Transport with the default settings.
func New() *Transport {
	return &Transport{BufferSize: DefaultBufferSize}
}

// Dial connects to the listener registered under name addr on network "pipe".
// It returns once the listener has queued the other end for Accept, failing
// with an error wrapping ErrNoListener if no listener holds the name (or it
// closes meanwhile). While the listener's backlog is full Dial waits, until
// ctx is done. The returned end's RemoteAddr is addr, its LocalAddr is
// "addr#N" for a unique N.
func (t *Transport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	opError := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: Addr(addr), Err: err}
	}
	if network != "pipe" {
		return nil, opError(net.UnknownNetworkError(network))
	}
	if err := ctx.Err(); err != nil {
		return nil, opError(err)
	}
	l, seq := table.lookup(addr)
	if l == nil {
		return nil, opError(noListener(addr))
	}
	client, server := newPipe(t.bufferSize(), Addr(addr+"#"+strconv.FormatUint(seq, 10)), l.addr)
	if err := l.enqueue(ctx, server); err != nil {
		client.Close()
		server.Close()
		if errors.Is(err, net.ErrClosed) {
			err = noListener(addr)
		}
		return nil, opError(err)
	}
	return client, nil
}

// Listen registers name addr on network "pipe" and returns a listener whose
// Accept returns the ends of the pipes dialled to it. An empty addr asks for
// a fresh name ("pipe-1", "pipe-2", ...), which the listener's Addr reports.
// Listen fails with an error wrapping ErrNameInUse if a listener holds the
// name already. Closing the listener frees the name.
func (t *Transport) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	opError := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: Addr(addr), Err: err}
	}
	if network != "pipe" {
		return nil, opError(net.UnknownNetworkError(network))
	}
	if err := ctx.Err(); err != nil {
		return nil, opError(err)
	}
	l := table.register(addr)
	if l == nil {
		return nil, opError(&nameError{
			msg:  fmt.Sprintf("pipe: name %q is already in use", addr),
			errs: []error{ErrNameInUse, syscall.EADDRINUSE},
		})
	}
	return l, nil
}

func (t *Transport) bufferSize() int {
	if t == nil || t.BufferSize <= 0 {
		return DefaultBufferSize
	}
	return t.BufferSize
}

func noListener(name string) error {
	return &nameError{
		msg:  "pipe: no listener at " + name,
		errs: []error{ErrNoListener, syscall.ECONNREFUSED},
	}
}

// nameError says what went wrong with which name, and matches both the
// package's error and the errno a socket would have given.
type nameError struct {
	msg  string
	errs []error
}

func (e *nameError) Error() string   { return e.msg }
func (e *nameError) Unwrap() []error { return e.errs }

// table is the process-wide table of listeners by name.
var table = registry{listeners: make(map[string]*listener)}

type registry struct {
	mu        sync.Mutex
	listeners map[string]*listener
	seq       uint64 // for fresh names and dialling ends' names
}

// register returns a new listener under name, or under a fresh name if name
// is empty; nil if the name is taken.
func (r *registry) register(name string) *listener {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		for name == "" || r.listeners[name] != nil {
			r.seq++
			name = "pipe-" + strconv.FormatUint(r.seq, 10)
		}
	} else if r.listeners[name] != nil {
		return nil
	}
	l := &listener{
		addr:  Addr(name),
		queue: make(chan net.Conn, acceptBacklog),
		done:  make(chan struct{}),
	}
	r.listeners[name] = l
	return l
}

// lookup returns the listener under name, or nil, and a fresh sequence number.
func (r *registry) lookup(name string) (*listener, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return r.listeners[name], r.seq
}

func (r *registry) remove(l *listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners[string(l.addr)] == l {
		delete(r.listeners, string(l.addr))
	}
}

// listener is a name in the table and the queue of pipe ends waiting for
// Accept.
type listener struct {
	addr  Addr
	queue chan net.Conn // bounded by acceptBacklog
	done  chan struct{} // closed by Close
	// offering is read-held by each Dial while it offers a pipe end to queue,
	// and write-held by Close while it empties queue, so that no end is left
	// in the queue of a closed listener.
	offering  sync.RWMutex
	closeOnce sync.Once
}

// Accept waits for and returns the next pipe end dialled to the listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedError("accept")
	default:
	}
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, l.closedError("accept")
	}
}

// Close frees the listener's name, makes Accept return an error wrapping
// net.ErrClosed, and closes the pipe ends still waiting in its backlog, so
// their dialling ends read io.EOF.
func (l *listener) Close() error {
	first := false
	l.closeOnce.Do(func() {
		first = true
		table.remove(l)
		close(l.done)
		l.offering.Lock()
		defer l.offering.Unlock()
		for {
			select {
			case c := <-l.queue:
				c.Close()
			default:
				return
			}
		}
	})
	if !first {
		return l.closedError("close")
	}
	return nil
}

// Addr returns the listener's name.
func (l *listener) Addr() net.Addr { return l.addr }

// enqueue offers c to Accept, waiting while the backlog is full. It fails with
// net.ErrClosed if the listener closes, or with ctx's error.
func (l *listener) enqueue(ctx context.Context, c net.Conn) error {
	l.offering.RLock()
	defer l.offering.RUnlock()
	select {
	case <-l.done:
		return net.ErrClosed
	default:
	}
	select {
	case l.queue <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *listener) closedError(op string) error {
	return &net.OpError{Op: op, Net: "pipe", Addr: l.addr, Err: net.ErrClosed}
}
