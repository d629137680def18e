// Package astranet carries millions of independent streams between machines
// over a handful of links. Each stream is a net.Conn, each listener a
// net.Listener; nodes form a flat network in which a node is named by a uint64
// id and a listener by a uint32 port or a service name.
//
//	node := astranet.New()
//	node.ListenAndServe("tcp4", ":10000") // accept links
//	l, _ := node.Bind("", "echo")         // listen under a service name
//
//	peer := astranet.New()
//	peer.Join("tcp4", "127.0.0.1:10000")  // keep a link to node
//	conn, _ := peer.Dial("", "echo")      // a stream to the service
//
// This package is the face: it keeps the shape of the original astranet API
// and wires the engine (package core) to its embedded transports (tcp, quic,
// pipe). Links are any reliable byte stream: Attach runs one over any
// io.ReadWriter.
package astranet
