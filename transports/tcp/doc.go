// Package tcp is the TCP transport: it turns "host:port" addresses into links
// over TCP, optionally secured with TLS (mutual TLS included).
//
// A Transport has the Dial and Listen methods that astranet's core expects of
// a transport (core.Transport), on networks "tcp", "tcp4" and "tcp6". It
// hands core plain net.Conn values and knows nothing of astranet frames: the
// link handshake, keep-alive pings and multiplexing all happen in core, above
// it. What it does own is the socket: TCP keep-alive, TCP_NODELAY, socket
// buffer sizes (ReadBuffer, WriteBuffer; the kernel's autotuning by default),
// and the TLS handshake.
//
// To give a node's TCP links larger socket buffers, for example on a LAN:
//
//	astranet.New(astranet.WithTransport(&tcp.Transport{ReadBuffer: 8 << 20}, "tcp", "tcp4", "tcp6"))
package tcp
