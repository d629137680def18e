// Package quic is astranet's QUIC transport: it turns an address into links
// (net.Conn) and listeners (net.Listener) over QUIC, using quic-go.
//
// It sits beside transports/tcp and transports/pipe, below astranet core,
// which takes any value with the Dial and Listen methods of [Transport] as a
// core.Transport. Like every transport it knows nothing of astranet frames:
// core frames its streams on top of the byte stream a link provides.
//
// # Mapping
//
// One link is one bidirectional QUIC stream on a QUIC connection of its own.
// Dial completes the QUIC handshake and opens the stream; the listener's
// Accept returns a link for each incoming connection once its first stream
// arrives. A QUIC stream becomes visible to the peer only when something is
// sent on it, so the dialling side must write first. astranet core does (its
// handshake goes out right after Dial returns), so no preface byte is added.
// The listening side allows one stream per connection.
//
// Why one stream per link: astranet multiplexes its own streams over a link,
// with its own flow control, so a single ordered byte stream is all it needs,
// and one link behaves the same on every transport. Under packet loss, lanes
// help: join the same address several times and the node spreads its streams
// over the links, each its own QUIC connection with its own congestion
// controller. Several QUIC streams on one connection were measured too and
// did not pay; docs/QUIC.md has the figures and the reasoning.
//
// # Closing
//
// Link.Close unblocks pending Read and Write and returns at once. What was
// written before it still reaches the peer, which then reads io.EOF. A link
// has no half-close, so the end of the peer's stream means the peer has
// closed its link; the QUIC connection is closed (CONNECTION_CLOSE,
// application code 0) by whichever end closes second, or at most
// MaxIdleTimeout after Close if the peer never closes. Both ends are
// expected to be links of this package. A link whose peer vanishes fails its
// Read and Write within MaxIdleTimeout.
//
// # Trust
//
// With Transport.TLS nil the link is encrypted but not authenticated: the
// listener presents an ephemeral self-signed certificate and the dialler
// does not verify it. Use that for tests and closed networks only; otherwise
// set Transport.TLS, with ClientAuth set to tls.RequireAndVerifyClientCert
// for mutual TLS. Both ends always negotiate the ALPN protocol [ALPN].
//
// # Liveness
//
// KeepAlivePeriod (5 s) and MaxIdleTimeout (15 s) default to the values of
// astranet core's own keep-alive, so a dead QUIC link is noticed as fast as a
// dead TCP link.
package quic
