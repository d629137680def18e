package losstest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
)

// TestRelayDropRate: plain UDP through the relay is delayed by Delay and
// dropped at about the rate asked for.
func TestRelayDropRate(t *testing.T) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	r, err := NewRelay(sink.LocalAddr().String(), RelayConfig{Loss: 0.3, Delay: 5 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("udp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const n = 2000
	sent := time.Now()
	first := make(chan time.Duration, 1)
	received := make(chan int, 1)
	go func() { // reads while the datagrams are sent, so no buffer fills
		got := 0
		buf := make([]byte, 16)
		for got < n {
			sink.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := sink.Read(buf); err != nil {
				break // no more are coming
			}
			if got == 0 {
				first <- time.Since(sent)
			}
			got++
		}
		received <- got
	}()
	for i := range n {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // pace, so that no socket buffer overflows
		}
	}
	got := <-received
	select {
	case d := <-first:
		if d < 5*time.Millisecond {
			t.Errorf("first datagram after %v, want at least the 5 ms delay", d)
		}
	default:
		t.Error("nothing came through")
	}
	st := r.Stats()
	if st.Overflow != 0 {
		t.Errorf("overflow %d, want 0", st.Overflow)
	}
	if uint64(got) != st.Forwarded || st.Forwarded+st.Dropped != n {
		t.Errorf("received %d, stats %+v: want received = forwarded, forwarded + dropped = %d", got, st, n)
	}
	if rate := float64(st.Dropped) / n; rate < 0.25 || rate > 0.35 {
		t.Errorf("drop rate %.3f, want about 0.3", rate)
	}
}

// TestRelayCarriesQUIC: at no loss a QUIC link through the relay carries an
// astranet stream.
func TestRelayCarriesQUIC(t *testing.T) {
	cfg := core.DefaultConfig()
	cfg.HandshakeTimeout = time.Second
	p := newPair(t, cfg, RelayConfig{Delay: 5 * time.Millisecond, Seed: 1}, nil)
	p.serve(t, 7, echo)
	p.join(t, 1)
	s := p.dial(t, 7)
	defer s.Close()
	s.SetDeadline(time.Now().Add(3 * time.Second))
	for i := range 10 {
		if err := pingPong(s, []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	if st := p.relay.Stats(); st.Forwarded == 0 || st.Dropped != 0 {
		t.Errorf("relay stats %+v: want datagrams forwarded, none dropped", st)
	}
}

// TestRelayBlackHole: at 100% loss no handshake completes, and Join fails
// within the node's HandshakeTimeout.
func TestRelayBlackHole(t *testing.T) {
	cfg := core.DefaultConfig()
	cfg.HandshakeTimeout = time.Second
	p := newPair(t, cfg, RelayConfig{Loss: 1, Seed: 1}, nil)
	began := time.Now()
	err := p.a.Join(context.Background(), "quic", p.relay.Addr())
	took := time.Since(began)
	if err == nil {
		t.Fatal("Join through a relay that drops everything succeeded")
	}
	if took > 2*time.Second {
		t.Errorf("Join failed after %v, want about the 1 s HandshakeTimeout", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("Join error (not a deadline): %v", err)
	}
	if st := p.relay.Stats(); st.Forwarded != 0 || st.Dropped == 0 {
		t.Errorf("relay stats %+v: want all dropped", st)
	}
}
