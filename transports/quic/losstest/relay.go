// Package losstest measures astranet's QUIC transport on a lossy path. It
// holds a small userspace UDP relay that drops and delays datagrams, standing
// in for tc netem where the kernel lacks sch_netem, and the tests that use it
// (see docs/QUIC.md for the experiment and its results).
package losstest

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RelayConfig sets how a Relay mangles the path.
type RelayConfig struct {
	// Loss is the probability, in [0, 1], that a datagram is dropped. Each
	// datagram, in either direction, is dropped independently.
	Loss float64
	// Delay is added to every datagram that is forwarded, in each direction
	// (a one-way delay; the round trip grows by twice it).
	Delay time.Duration
	// Seed seeds the drop decisions, so a run is repeatable up to scheduling.
	Seed uint64
	// Queue is how many datagrams may wait out Delay in each direction of each
	// flow; a datagram that finds the queue full is dropped (tail drop) and
	// counted in Stats.Overflow. Zero means 4096.
	Queue int
	// MaxFlows caps the client addresses the relay serves; datagrams from
	// further clients are dropped. Zero means 64.
	MaxFlows int
}

// Stats counts datagrams over both directions.
type Stats struct {
	Forwarded uint64 // sent on to their destination
	Dropped   uint64 // dropped on purpose (Loss)
	Overflow  uint64 // dropped because a delay queue was full
}

// Relay forwards UDP datagrams between its clients and one target address.
// Each client address gets a socket of its own towards the target, so the
// target sees one peer per client, as it would without the relay.
type Relay struct {
	conn   *net.UDPConn // faces the clients
	target *net.UDPAddr
	cfg    RelayConfig
	loss   atomic.Uint64 // the drop probability times lossScale
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	flows  map[netip.AddrPort]*flow
	closed bool

	forwarded, dropped, overflow atomic.Uint64
}

// flow is one client's path: its socket towards the target and a delay line
// each way.
type flow struct {
	client   netip.AddrPort
	upstream *net.UDPConn
	up       chan packet // client to target; written only by Relay.readClients
	down     chan packet // target to client; written only by Relay.readTarget
}

type packet struct {
	due  time.Time
	data []byte
}

const lossScale = 1 << 32

// NewRelay listens on an ephemeral port of 127.0.0.1 and relays to target
// ("host:port"). Close stops it.
func NewRelay(target string, cfg RelayConfig) (*Relay, error) {
	if cfg.Loss < 0 || cfg.Loss > 1 {
		return nil, errors.New("losstest: Loss must be in [0, 1]")
	}
	if cfg.Delay < 0 {
		return nil, errors.New("losstest: Delay must not be negative")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 64
	}
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	setBuffers(conn)
	r := &Relay{
		conn:   conn,
		target: raddr,
		cfg:    cfg,
		done:   make(chan struct{}),
		flows:  make(map[netip.AddrPort]*flow),
	}
	r.SetLoss(cfg.Loss)
	r.wg.Add(1)
	go r.readClients()
	return r, nil
}

// Addr is the address clients send to instead of the target.
func (r *Relay) Addr() string { return r.conn.LocalAddr().String() }

// SetLoss changes the drop probability (clamped to [0, 1]) from now on.
func (r *Relay) SetLoss(p float64) {
	p = min(max(p, 0), 1)
	r.loss.Store(uint64(p * lossScale))
}

// Stats returns the counts so far.
func (r *Relay) Stats() Stats {
	return Stats{
		Forwarded: r.forwarded.Load(),
		Dropped:   r.dropped.Load(),
		Overflow:  r.overflow.Load(),
	}
}

// Close stops the relay and waits for its goroutines. Datagrams still in a
// delay queue are discarded.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	err := r.conn.Close()
	for _, f := range r.flows {
		f.upstream.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// admit decides the fate of one datagram and, if it is kept, queues a copy of
// it on q. Only the goroutine that owns rng and q calls it.
func (r *Relay) admit(rng *rand.Rand, q chan packet, b []byte) {
	if p := r.loss.Load(); p > 0 && rng.Uint64N(lossScale) < p {
		r.dropped.Add(1)
		return
	}
	pk := packet{due: time.Now().Add(r.cfg.Delay), data: append([]byte(nil), b...)}
	select {
	case q <- pk:
	default:
		r.overflow.Add(1)
	}
}

// readClients reads what clients send, opening a flow for each new client.
func (r *Relay) readClients() {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0))
	var mine []*flow // the flows whose up channel this goroutine closes
	defer func() {
		for _, f := range mine {
			close(f.up)
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		r.mu.Lock()
		f := r.flows[from]
		if f == nil && !r.closed && len(r.flows) < r.cfg.MaxFlows {
			f, err = r.openFlow(from, uint64(len(r.flows))+1)
			if err == nil {
				mine = append(mine, f)
			}
		}
		r.mu.Unlock()
		if f == nil {
			r.dropped.Add(1)
			continue
		}
		r.admit(rng, f.up, buf[:n])
	}
}

// openFlow starts a flow for client; r.mu is held.
func (r *Relay) openFlow(client netip.AddrPort, index uint64) (*flow, error) {
	up, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil, err
	}
	setBuffers(up)
	f := &flow{
		client:   client,
		upstream: up,
		up:       make(chan packet, r.cfg.Queue),
		down:     make(chan packet, r.cfg.Queue),
	}
	r.flows[client] = f
	r.wg.Add(3)
	go r.readTarget(f, index)
	go r.deliver(f.up, func(b []byte) error { _, err := f.upstream.Write(b); return err })
	go r.deliver(f.down, func(b []byte) error { _, err := r.conn.WriteToUDPAddrPort(b, client); return err })
	return f, nil
}

// setBuffers asks for socket buffers large enough that bursts are dropped by
// the relay's own queues, which count them, rather than by the kernel. The
// kernel caps them at net.core.rmem_max and wmem_max; that is best effort.
func setBuffers(c *net.UDPConn) {
	c.SetReadBuffer(socketBuffer)
	c.SetWriteBuffer(socketBuffer)
}

const socketBuffer = 4 << 20

// readTarget reads what the target sends back to one client.
func (r *Relay) readTarget(f *flow, index uint64) {
	defer r.wg.Done()
	defer close(f.down)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, index))
	buf := make([]byte, 64<<10)
	failures := 0
	for {
		n, err := f.upstream.Read(buf)
		if err != nil {
			// ICMP port unreachable and the like come once per datagram the
			// target refused, and it may come back; anything persistent ends
			// the flow.
			if failures++; failures < 100 && r.isOpen() {
				continue
			}
			return
		}
		failures = 0
		r.admit(rng, f.down, buf[:n])
	}
}

func (r *Relay) isOpen() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// deliver is one delay line: it sends each packet of q once it is due. The
// delay is the same for all, so q is already in order of due time.
func (r *Relay) deliver(q <-chan packet, send func([]byte) error) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var pk packet
		var ok bool
		select {
		case pk, ok = <-q:
			if !ok {
				return
			}
		case <-r.done:
			return
		}
		if wait := time.Until(pk.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-r.done:
				return
			}
		}
		if send(pk.data) == nil {
			r.forwarded.Add(1)
		}
	}
}
