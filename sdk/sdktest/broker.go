package sdktest

import (
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Broker is an sdk.Broker over 127.0.0.1, for tests that run host and plugin
// in one process.
type Broker struct {
	mu      sync.Mutex
	next    uint32
	addrs   map[uint32]string
	servers map[uint32]*grpc.Server
	wg      sync.WaitGroup
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{addrs: make(map[uint32]string), servers: make(map[uint32]*grpc.Server)}
}

// ServeHost serves register's services on a new 127.0.0.1 port.
func (b *Broker) ServeHost(register func(*grpc.Server)) (uint32, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	s := grpc.NewServer()
	register(s)
	b.mu.Lock()
	b.next++
	id := b.next
	b.addrs[id] = ln.Addr().String()
	b.servers[id] = s
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		s.Serve(ln)
	}()
	return id, func() { b.stop(id) }, nil
}

func (b *Broker) stop(id uint32) {
	b.mu.Lock()
	s := b.servers[id]
	delete(b.servers, id)
	delete(b.addrs, id)
	b.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// DialHost connects to what is served under id.
func (b *Broker) DialHost(id uint32) (*grpc.ClientConn, error) {
	b.mu.Lock()
	addr, ok := b.addrs[id]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("sdktest: nothing served under id %d", id)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Close stops everything the broker serves.
func (b *Broker) Close() {
	b.mu.Lock()
	ids := make([]uint32, 0, len(b.servers))
	for id := range b.servers {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.stop(id)
	}
	b.wg.Wait()
}
