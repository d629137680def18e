package quic

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer answers A and AAAA queries for name with addrs, from a UDP socket
// on 127.0.0.1, and returns a resolver that asks it alone.
func dnsServer(t *testing.T, name string, addrs ...netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			resp := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			resp.EnableCompression()
			resp.StartQuestions()
			resp.Question(q)
			resp.StartAnswers()
			if !strings.EqualFold(q.Name.String(), name+".") {
				continue // no answer: the resolver times out on other names
			}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			for _, a := range addrs {
				switch {
				case q.Type == dnsmessage.TypeA && a.Is4():
					resp.AResource(rh, dnsmessage.AResource{A: a.As4()})
				case q.Type == dnsmessage.TypeAAAA && a.Is6():
					resp.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
				}
			}
			msg, err := resp.Finish()
			if err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", pc.LocalAddr().String())
		},
	}
}

// A name with an IPv6 and an IPv4 loopback address, only one of which has a
// listener: Dial tries the first address, then the second, and the link
// opens. It used to try only the first and fail after HandshakeTimeout.
func TestDialTriesEveryAddress(t *testing.T) {
	const name = "both.astranet.test"
	r := dnsServer(t, name, netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil || len(ips) != 2 {
		t.Fatalf("the test's resolver gave %v, %v; want two addresses", ips, err)
	}
	// Listen on the address Dial tries second.
	second := ips[1].Unmap()
	network, host := "quic4", "127.0.0.1"
	if second.Is6() {
		network, host = "quic6", "[::1]"
	}
	ln, err := New().Listen(context.Background(), network, host+":0")
	if err != nil {
		t.Skipf("cannot listen on %s, the address tried second: %v", host, err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	tr := &Transport{Resolver: r, HandshakeTimeout: 2 * time.Second}
	start := time.Now()
	c, err := tr.Dial(context.Background(), "quic", net.JoinHostPort(name, port))
	if err != nil {
		t.Fatalf("Dial %s (%v first, listener on %v): %v", name, ips[0], second, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-accepted:
		defer a.Close()
		if got := a.RemoteAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(); got != second {
			t.Errorf("the link came from %v, want %v", got, second)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the listener accepted no link within 5 s")
	}
	t.Logf("%v first, link to %v after %v", ips[0], second, time.Since(start).Round(time.Millisecond))
}
