package main

import (
	"io"
	"net"
)

// closeWriter is a connection that can half-close: *net.TCPConn and astranet
// streams are.
type closeWriter interface{ CloseWrite() error }

// proxy copies bytes both ways between a and b until both directions have
// ended, passing each end's half-close on to the other, then closes both.
func proxy(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipeHalf(b, a)
	}()
	pipeHalf(a, b)
	<-done
	a.Close()
	b.Close()
}

// pipeHalf copies src to dst. At src's end of data it half-closes dst (or
// closes it, if dst cannot half-close). On an error it closes both, so that
// the other direction stops as well rather than wait for ever.
func pipeHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}
