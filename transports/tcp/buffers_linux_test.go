package tcp

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sockopt reads a SOL_SOCKET option of c's socket.
func sockopt(t *testing.T, c net.Conn, opt int) int {
	t.Helper()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// sysctlInt reads the i-th integer of a file in /proc/sys.
func sysctlInt(t *testing.T, path string, i int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("cannot read %s: %v", path, err)
	}
	f := strings.Fields(string(b))
	if i >= len(f) {
		t.Skipf("%s: %q has no field %d", path, b, i)
	}
	v, err := strconv.Atoi(f[i])
	if err != nil {
		t.Skipf("%s: %v", path, err)
	}
	return v
}

// TestSocketBuffers: ReadBuffer and WriteBuffer reach both ends' sockets, on
// plain TCP and under TLS. Linux doubles the sizes it is given, up to twice
// its maximum.
func TestSocketBuffers(t *testing.T) {
	p := newPKI(t)
	size := min(1<<20, sysctlInt(t, "/proc/sys/net/core/rmem_max", 0), sysctlInt(t, "/proc/sys/net/core/wmem_max", 0))
	// The defaults must be below size, or a transport that set nothing would
	// pass.
	if def := max(sysctlInt(t, "/proc/sys/net/ipv4/tcp_rmem", 1), sysctlInt(t, "/proc/sys/net/ipv4/tcp_wmem", 1)); def >= size {
		t.Skipf("the kernel's default socket buffer (%d) is not below %d: nothing to tell apart", def, size)
	}
	for _, tlsOn := range []bool{false, true} {
		server := &Transport{ReadBuffer: size, WriteBuffer: size}
		client := &Transport{ReadBuffer: size, WriteBuffer: size}
		name := "tcp"
		if tlsOn {
			server.TLS, client.TLS, name = p.serverTLS(false), p.clientTLS(false), "tls"
		}
		t.Run(name, func(t *testing.T) {
			l, err := server.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c, s, err := dialAccept(client, l)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			defer s.Close()
			for end, conn := range map[string]net.Conn{"dialler": c, "listener": s} {
				if got := sockopt(t, conn, syscall.SO_RCVBUF); got < size {
					t.Errorf("%s: SO_RCVBUF %d, want at least %d", end, got, size)
				}
				if got := sockopt(t, conn, syscall.SO_SNDBUF); got < size {
					t.Errorf("%s: SO_SNDBUF %d, want at least %d", end, got, size)
				}
			}
		})
	}
}
