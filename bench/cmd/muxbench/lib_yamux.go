package main

import (
	"github.com/hashicorp/yamux"
)

// yamuxLib is github.com/hashicorp/yamux with DefaultConfig. Its docs give no
// advice to raise MaxStreamWindowSize (256 KiB) for throughput, so nothing is
// changed. Keep-alives stay on as by default.
type yamuxLib struct{}

func init() { register(yamuxLib{}) }

func (yamuxLib) Name() string { return "yamux" }

func (yamuxLib) Setup() (Opener, Acceptor, func(), error) {
	cc, sc, err := tcpPair()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := yamux.DefaultConfig()
	client, err := yamux.Client(cc, cfg)
	if err != nil {
		cc.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	server, err := yamux.Server(sc, cfg)
	if err != nil {
		client.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	cleanup := func() {
		client.Close()
		server.Close()
	}
	return client, server, cleanup, nil
}
