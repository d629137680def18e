//go:build darwin || linux || openbsd

package core

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawWriter writes to a socket without ever waiting for it: it hands the
// kernel what it takes now and reports how much that was. A stream's own
// goroutine uses it to send a small write at once (link.sendNow) without
// blocking on the network.
type rawWriter struct {
	rc   syscall.RawConn
	bufs [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

// newRawWriter returns a rawWriter for TCP and Unix sockets, nil otherwise.
func newRawWriter(c any) *rawWriter {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{rc: rc}
	w.fn = func(fd uintptr) bool {
		w.n, w.err = unix.Writev(int(fd), w.bufs)
		return true // never wait for the socket to become writable
	}
	return w
}

// write writes a prefix of bufs, possibly empty, and returns its length.
func (w *rawWriter) write(bufs [][]byte) (int, error) {
	w.bufs = bufs
	err := w.rc.Write(w.fn)
	w.bufs = nil
	if err != nil {
		return 0, err
	}
	n, err := max(w.n, 0), w.err
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		err = nil
	}
	return n, err
}
