package pipe

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// listen returns a listener under a fresh name, closed when the test ends.
func listen(t *testing.T, tr *Transport) net.Listener {
	t.Helper()
	l, err := tr.Listen(context.Background(), "pipe", "")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialAccept dials l and returns both ends.
func dialAccept(tr *Transport, l net.Listener) (client, server net.Conn, err error) {
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = tr.Dial(context.Background(), "pipe", l.Addr().String())
	server = <-accepted
	if err != nil || server == nil {
		if client != nil {
			client.Close()
		}
		if server != nil {
			server.Close()
		}
		return nil, nil, errors.Join(err, errors.New("no connection accepted"))
	}
	return client, server, nil
}

func TestTransportNettest(t *testing.T) {
	for _, tr := range []*Transport{New(), {BufferSize: 1000}} {
		t.Run(sizeName(tr.bufferSize()), func(t *testing.T) {
			l := listen(t, tr)
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				c, s, err := dialAccept(tr, l)
				if err != nil {
					return nil, nil, nil, err
				}
				return c, s, func() { c.Close(); s.Close() }, nil
			})
		})
	}
}

func TestTransportAddrs(t *testing.T) {
	tr := New()
	l, err := tr.Listen(context.Background(), "pipe", "addrs-hub")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, s, err := dialAccept(tr, l)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer s.Close()
	if got := l.Addr(); got.Network() != "pipe" || got.String() != "addrs-hub" {
		t.Errorf("listener Addr = %s/%s, want pipe/addrs-hub", got.Network(), got)
	}
	if c.RemoteAddr().String() != "addrs-hub" || s.LocalAddr().String() != "addrs-hub" {
		t.Errorf("dialled end's RemoteAddr = %s, accepted end's LocalAddr = %s; want addrs-hub", c.RemoteAddr(), s.LocalAddr())
	}
	if c.LocalAddr() != s.RemoteAddr() || !strings.HasPrefix(c.LocalAddr().String(), "addrs-hub#") {
		t.Errorf("dialled end's LocalAddr = %s, accepted end's RemoteAddr = %s; want the same addrs-hub#N", c.LocalAddr(), s.RemoteAddr())
	}
}

func TestTransportErrors(t *testing.T) {
	tr := New()
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	l, err := tr.Listen(ctx, "pipe", "errors-hub")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tests := []struct {
		name     string
		do       func() error
		wantIs   []error
		wantText string
	}{
		{
			name:     "dial without listener",
			do:       func() error { _, err := tr.Dial(ctx, "pipe", "nowhere"); return err },
			wantIs:   []error{ErrNoListener, syscall.ECONNREFUSED},
			wantText: "pipe: no listener at nowhere",
		},
		{
			name:     "listen on a taken name",
			do:       func() error { _, err := tr.Listen(ctx, "pipe", "errors-hub"); return err },
			wantIs:   []error{ErrNameInUse, syscall.EADDRINUSE},
			wantText: `"errors-hub"`,
		},
		{
			name:     "dial on a bad network",
			do:       func() error { _, err := tr.Dial(ctx, "tcp", "errors-hub"); return err },
			wantText: "unknown network tcp",
		},
		{
			name:     "listen on a bad network",
			do:       func() error { _, err := tr.Listen(ctx, "udp", "x"); return err },
			wantText: "unknown network udp",
		},
		{
			name:   "dial with a cancelled context",
			do:     func() error { _, err := tr.Dial(cancelled, "pipe", "errors-hub"); return err },
			wantIs: []error{context.Canceled},
		},
		{
			name:   "listen with a cancelled context",
			do:     func() error { _, err := tr.Listen(cancelled, "pipe", "y"); return err },
			wantIs: []error{context.Canceled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				t.Fatalf("got %T %v, want a *net.OpError", err, err)
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("error %q is not %v", err, target)
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
		})
	}
}

func TestListenerClose(t *testing.T) {
	tr := New()
	ctx := context.Background()

	t.Run("unblocks Accept and frees the name", func(t *testing.T) {
		l, err := tr.Listen(ctx, "pipe", "close-hub")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			accepted <- err
		}()
		time.Sleep(10 * time.Millisecond) // let Accept block
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-accepted:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept: %v, want net.ErrClosed", err)
			}
		case <-time.After(waitLimit):
			t.Fatal("Close left Accept blocked")
		}
		if err := l.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
		if _, err := tr.Dial(ctx, "pipe", "close-hub"); !errors.Is(err, ErrNoListener) {
			t.Errorf("Dial after Close: %v, want ErrNoListener", err)
		}
		l2, err := tr.Listen(ctx, "pipe", "close-hub")
		if err != nil {
			t.Fatalf("Listen again after Close: %v", err)
		}
		l2.Close()
	})

	t.Run("closes ends waiting in the backlog", func(t *testing.T) {
		l := listen(t, tr)
		c, err := tr.Dial(ctx, "pipe", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l.Close()
		c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("Read on an end never accepted: %v, want io.EOF", err)
		}
	})
}

func TestDialFullBacklog(t *testing.T) {
	tr := New()
	l := listen(t, tr)
	var dialled []net.Conn
	defer func() {
		for _, c := range dialled {
			c.Close()
		}
	}()
	for range acceptBacklog {
		c, err := tr.Dial(context.Background(), "pipe", l.Addr().String())
		if err != nil {
			t.Fatalf("Dial within the backlog: %v", err)
		}
		dialled = append(dialled, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tr.Dial(ctx, "pipe", l.Addr().String())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial past the backlog: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Errorf("Dial gave up after %v, want it to wait for its context (50ms)", waited)
	}

	// Once Accept makes room, a waiting Dial goes through.
	done := make(chan error, 1)
	go func() {
		c, err := tr.Dial(context.Background(), "pipe", l.Addr().String())
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Dial after Accept made room: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Dial stayed blocked after Accept made room")
	}
}

func TestFreshNames(t *testing.T) {
	tr := New()
	seen := make(map[string]bool)
	for range 10 {
		l := listen(t, tr)
		name := l.Addr().String()
		if !strings.HasPrefix(name, "pipe-") || seen[name] {
			t.Errorf("fresh name %q: want a new pipe-N", name)
		}
		seen[name] = true
	}
}
