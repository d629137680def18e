// Package tcp is the TCP transport: it turns "host:port" addresses into links
// over TCP, optionally secured with TLS (mutual TLS included).
//
// A Transport has the Dial and Listen methods that astranet's core expects of
// a transport (core.Transport), on networks "tcp", "tcp4" and "tcp6". It
// hands core plain net.Conn values and knows nothing of astranet frames: the
// link handshake, keep-alive pings and multiplexing all happen in core, above
// it. What it does own is the socket: TCP keep-alive, TCP_NODELAY, and the TLS
// handshake.
package tcp
