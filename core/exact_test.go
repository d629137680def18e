package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// Writes with short deadlines on a busy link that stalls now and then.
// Whatever n each Write reports, the peer must read exactly the
// concatenation of p[:n] over all Writes, in order.
func TestShortWritesExact(t *testing.T) {
	a, b, r, ln, _ := heldPath(t)
	const streams, writes = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, 4*streams)
	stopToggle := make(chan struct{})
	go func() {
		for i := 0; i < 400; i++ {
			select {
			case <-stopToggle:
				r.resume()
				return
			case <-time.After(time.Duration(rand.IntN(5)+1) * time.Millisecond):
			}
			if i%2 == 0 {
				r.pause()
			} else {
				r.resume()
			}
		}
		r.resume()
	}()
	defer close(stopToggle)
	for i := 0; i < streams; i++ {
		s, peer := openPair(t, a, b.ID(), ln)
		var sent bytes.Buffer
		wdone := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(wdone)
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			for k := 0; k < writes; k++ {
				size := []int{100, 5000, 20 << 10, 70 << 10, 300 << 10}[rng.IntN(5)]
				p := make([]byte, size)
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				s.SetWriteDeadline(time.Now().Add(time.Duration(rng.IntN(3000)) * time.Microsecond))
				n, err := s.Write(p)
				sent.Write(p[:n])
				// Scribble over p at once: a Write that returned must not
				// have left p referenced by the link.
				for j := range p {
					p[j] = 0xEE
				}
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					errs <- fmt.Errorf("stream %d write %d: %v", i, k, err)
					return
				}
				if err == nil && n != size {
					errs <- fmt.Errorf("stream %d write %d: short write %d/%d with nil error", i, k, n, size)
				}
			}
			s.SetWriteDeadline(time.Time{})
			s.CloseWrite()
		}()
		go func() {
			defer wg.Done()
			peer.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(peer)
			<-wdone
			if err != nil {
				errs <- fmt.Errorf("stream %d read: %v", i, err)
				return
			}
			if !bytes.Equal(got, sent.Bytes()) {
				k := 0
				for k < len(got) && k < sent.Len() && got[k] == sent.Bytes()[k] {
					k++
				}
				errs <- fmt.Errorf("stream %d: read %d bytes, wrote %d; first difference at %d", i, len(got), sent.Len(), k)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Reads with short deadlines (so lent buffers are taken back often) must
// deliver the byte stream exactly.
func TestLentReadsExact(t *testing.T) {
	a, b, ln := linkedPair(t)
	const streams, size = 4, 4 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for i := 0; i < streams; i++ {
		s, peer := openPair(t, a, b.ID(), ln)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(j*7 + j>>9 + i)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for off := 0; off < size; {
				k := min(size-off, []int{1, 300, 9000, 70000}[rng.IntN(4)])
				if _, err := s.Write(data[off : off+k]); err != nil {
					errs <- err
					return
				}
				off += k
				if rng.IntN(50) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			s.CloseWrite()
		}()
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			var got bytes.Buffer
			buf := make([]byte, 64<<10)
			end := time.Now().Add(30 * time.Second)
			for time.Now().Before(end) {
				p := buf[:[]int{1, 100, 4096, 64 << 10}[rng.IntN(4)]]
				peer.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(500)) * time.Microsecond))
				n, err := peer.Read(p)
				got.Write(p[:n])
				for j := range p {
					p[j] = 0xEE
				}
				if err == io.EOF {
					break
				}
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					errs <- err
					return
				}
			}
			if !bytes.Equal(got.Bytes(), data) {
				errs <- fmt.Errorf("stream %d: read %d bytes, want %d, equal prefix? %v", i, got.Len(), len(data), bytes.HasPrefix(data, got.Bytes()))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Streams on a TCP link pass golang.org/x/net/nettest's net.Conn checks.
func TestNettestOverTCPLink(t *testing.T) {
	a, b, ln := linkedPair(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			return nil, nil, nil, err
		}
		p, err := ln.AcceptStream()
		if err != nil {
			return nil, nil, nil, err
		}
		return s, p, func() { s.Close(); p.Close() }, nil
	})
}
