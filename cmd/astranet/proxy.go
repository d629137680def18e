package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// closeWriter is a connection that can half-close: *net.TCPConn and astranet
// streams are.
type closeWriter interface{ CloseWrite() error }

// proxy copies bytes both ways between a and b until both directions have
// ended, passing each end's half-close on to the other, then closes both.
// With idle > 0 it also ends when no byte has moved either way for idle. It
// ends, closing both, when ctx ends.
func proxy(ctx context.Context, a, b net.Conn, idle time.Duration) {
	defer context.AfterFunc(ctx, func() {
		a.Close()
		b.Close()
	})()
	p := &proxyPair{idle: idle}
	p.touch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipeHalf(b, a)
	}()
	p.pipeHalf(a, b)
	<-done
	a.Close()
	b.Close()
}

// proxyPair is what the two directions of one proxied connection share.
type proxyPair struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last byte read either way
}

func (p *proxyPair) touch() { p.last.Store(time.Now().UnixNano()) }

// quiet reports whether no byte has moved either way for p.idle.
func (p *proxyPair) quiet() bool {
	return time.Since(time.Unix(0, p.last.Load())) >= p.idle
}

// pipeHalf copies src to dst. At src's end of data it half-closes dst (or
// closes it, if dst cannot half-close). On an error, or when the pair has
// been idle too long, it closes both, so that the other direction stops as
// well rather than wait for ever.
func (p *proxyPair) pipeHalf(dst, src net.Conn) {
	if err := p.copy(dst, src); err != nil {
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

// copy is io.Copy that, with an idle limit, reads and writes under a
// deadline and goes on past it while the other direction still moves bytes.
// Writes need the deadline too: when a peer stops reading, both directions
// can end up blocked in Write, where a read deadline never fires.
func (p *proxyPair) copy(dst, src net.Conn) error {
	if p.idle <= 0 {
		_, err := io.Copy(dst, src)
		return err
	}
	buf := make([]byte, 32<<10)
	for {
		src.SetReadDeadline(time.Now().Add(p.idle))
		n, err := src.Read(buf)
		if n > 0 {
			p.touch()
			if werr := p.write(dst, buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && !p.quiet():
			// This direction is quiet, the other is not.
		default:
			return err
		}
	}
}

// write writes all of b to dst under the idle limit, going on past a
// deadline while some byte moves either way.
func (p *proxyPair) write(dst net.Conn, b []byte) error {
	for len(b) > 0 {
		dst.SetWriteDeadline(time.Now().Add(p.idle))
		n, err := dst.Write(b)
		b = b[n:]
		if n > 0 {
			p.touch()
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !p.quiet():
		default:
			return err
		}
	}
	return nil
}
