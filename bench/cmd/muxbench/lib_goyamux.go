package main

import (
	"context"
	"net"

	yamux "github.com/libp2p/go-yamux/v5"
)

// goYamuxLib is github.com/libp2p/go-yamux/v5 with DefaultConfig, which
// already auto-tunes stream windows (256 KiB initial, 16 MiB max), so no
// window is changed. One limit is raised: MaxIncomingStreams (default 1000
// concurrent incoming streams; more are reset) to 2^21, because the idle,
// manyactive and busyecho workloads hold up to 1M streams at once. That is a
// policy cap, not a performance setting.
type goYamuxLib struct{}

func init() { register(goYamuxLib{}) }

func (goYamuxLib) Name() string { return "go-yamux" }

func (goYamuxLib) Setup() (Opener, Acceptor, func(), error) {
	cc, sc, err := tcpPair()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := yamux.DefaultConfig()
	cfg.MaxIncomingStreams = 1 << 21
	client, err := yamux.Client(cc, cfg, nil)
	if err != nil {
		cc.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	server, err := yamux.Server(sc, cfg, nil)
	if err != nil {
		client.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	cleanup := func() {
		client.Close()
		server.Close()
	}
	return goYamuxOpener{client}, server, cleanup, nil
}

type goYamuxOpener struct{ s *yamux.Session }

func (o goYamuxOpener) Open() (net.Conn, error) { return o.s.Open(context.Background()) }
