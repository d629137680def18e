package main

import (
	"net"

	"github.com/xtaci/smux"
)

// smuxLib is github.com/xtaci/smux with DefaultConfig switched to protocol
// version 2 (per-stream flow control). Buffers stay at their defaults
// (MaxReceiveBuffer 4 MiB per session, MaxStreamBuffer 64 KiB per stream):
// the README documents them but does not recommend raising them.
type smuxLib struct{}

func init() { register(smuxLib{}) }

func (smuxLib) Name() string { return "smux" }

func (smuxLib) Setup() (Opener, Acceptor, func(), error) {
	cc, sc, err := tcpPair()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := smux.DefaultConfig()
	cfg.Version = 2
	client, err := smux.Client(cc, cfg)
	if err != nil {
		cc.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	server, err := smux.Server(sc, cfg)
	if err != nil {
		client.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	cleanup := func() {
		client.Close()
		server.Close()
	}
	return smuxOpener{client}, smuxAcceptor{server}, cleanup, nil
}

type smuxOpener struct{ s *smux.Session }

func (o smuxOpener) Open() (net.Conn, error) { return o.s.OpenStream() }

type smuxAcceptor struct{ s *smux.Session }

func (a smuxAcceptor) Accept() (net.Conn, error) { return a.s.AcceptStream() }
