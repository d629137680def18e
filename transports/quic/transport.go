package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol that both ends of an astranet QUIC
// link negotiate. It is set on clones of the configured TLS configs, so a
// QUIC endpoint of another protocol cannot be mistaken for an astranet node.
const ALPN = "astranet/1"

// Defaults for the zero fields of Transport. The keep-alive and idle values
// mirror astranet core's link keep-alive (a ping after 5 s without traffic, a
// link silent for 15 s is dead), so a dead QUIC link is noticed as fast as a
// dead TCP link.
const (
	DefaultKeepAlivePeriod  = 5 * time.Second
	DefaultMaxIdleTimeout   = 15 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// acceptBacklog bounds the QUIC connections a listener holds that have not
// yet been handed to Accept (waiting for their stream or for Accept). More
// are refused at once rather than queued.
const acceptBacklog = 128

// QUIC application error codes this package sends in CONNECTION_CLOSE.
const (
	codeClosed  quicgo.ApplicationErrorCode = 0 // the link was closed normally
	codeRefused quicgo.ApplicationErrorCode = 1 // the listener did not take the connection
)

// errUnknownNetwork is wrapped in the *net.OpError returned for a network
// other than "quic", "quic4" or "quic6".
var errUnknownNetwork = errors.New(`quic transport: unknown network (want "quic", "quic4" or "quic6")`)

// Transport turns an address into astranet links over QUIC: each link is one
// bidirectional QUIC stream on its own QUIC connection. It implements the
// astranet core's Transport interface. The zero value is ready to use; a
// Transport is safe for concurrent use and must not be changed after first use.
type Transport struct {
	// TLS is used as the client config when dialling and as the server config
	// when listening; one config can carry both roles (Certificates, RootCAs,
	// ClientCAs). It is cloned, and its NextProtos replaced by [ALPN].
	// Mutual TLS works when the config sets ClientAuth to
	// tls.RequireAndVerifyClientCert.
	//
	// Nil TLS gives encryption without authentication: the listening side
	// presents an ephemeral self-signed certificate and the dialling side
	// skips verification, so anyone on the path can impersonate either end.
	// That is fine for tests and closed networks; set TLS for anything else.
	TLS *tls.Config

	// KeepAlivePeriod is how often an idle QUIC connection sends a ping
	// (capped by quic-go at half of MaxIdleTimeout). Zero means
	// DefaultKeepAlivePeriod.
	KeepAlivePeriod time.Duration

	// MaxIdleTimeout is how long a QUIC connection may receive nothing before
	// it is declared dead and its link's Read and Write fail. The peers use
	// the smaller of their two values. It also bounds how long a closed link
	// lingers to deliver what was written before Close. Zero means
	// DefaultMaxIdleTimeout.
	MaxIdleTimeout time.Duration

	// HandshakeTimeout bounds the QUIC/TLS handshake and, when dialling, the
	// opening of the link's stream. On the listening side a connection whose
	// stream has not arrived and been accepted within this time after its
	// handshake is closed. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// Resolver looks up the host names given to Dial and Listen. Nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
}

// New returns a Transport with nil TLS (see [Transport.TLS]) and default
// timeouts.
func New() *Transport {
	return &Transport{}
}

// Dial opens one link to addr ("host:port") on network "quic" (either IP
// family), "quic4" or "quic6". A host name may resolve to several addresses:
// as net.Dialer does, Dial tries them in turn, giving each an equal share of
// the time left, and returns the first link that opens, or the first error.
// It returns a *Link once the handshake has completed and the stream is open;
// it honours ctx and never takes longer than HandshakeTimeout in all.
//
// The listener sees the link only once the first byte (or Close) arrives on
// it, so the dialling side must write first; astranet core does, sending its
// handshake right after Dial returns.
func (t *Transport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	lk, _, err := t.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return lk, nil
}

// dial is Dial that also returns the link's UDP socket, which tests close to
// make the dialling side vanish.
func (t *Transport) dial(ctx context.Context, network, addr string) (*Link, *net.UDPConn, error) {
	udpNet, err := udpNetwork(network)
	if err != nil {
		return nil, nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, t.handshakeTimeout())
	defer cancel()

	raddrs, err := t.resolveUDPAddrs(ctx, udpNet, addr)
	if err != nil {
		return nil, nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for i, raddr := range raddrs {
		actx, acancel := ctx, context.CancelFunc(func() {})
		if left := len(raddrs) - i; left > 1 {
			if d, ok := ctx.Deadline(); ok {
				actx, acancel = context.WithTimeout(ctx, time.Until(d)/time.Duration(left))
			}
		}
		lk, udp, err := t.dialAddr(actx, udpNet, addr, raddr)
		acancel()
		if err == nil {
			return lk, udp, nil
		}
		if first == nil {
			first = &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, first
}

// dialAddr opens one link to raddr. addr, as given to Dial, names the server
// for TLS.
func (t *Transport) dialAddr(ctx context.Context, udpNet, addr string, raddr *net.UDPAddr) (*Link, *net.UDPConn, error) {
	if udpNet == "udp" {
		udpNet = "udp6"
		if raddr.IP.To4() != nil {
			udpNet = "udp4"
		}
	}
	udp, err := net.ListenUDP(udpNet, nil)
	if err != nil {
		return nil, nil, err
	}
	qc, err := quicgo.Dial(ctx, udp, raddr, t.clientTLS(addr), t.quicConfig(false))
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	// The socket belongs to this one connection: release it however the
	// connection ends (Close, peer's close, idle timeout), and at the latest
	// when its link is done (CloseWait).
	release := sync.OnceFunc(func() { udp.Close() })
	context.AfterFunc(qc.Context(), release)

	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(codeClosed, "")
		return nil, nil, err
	}
	return newLink(qc, st, t.maxIdleTimeout(), release), udp, nil
}

// Listen accepts links on addr ("host:port"; port 0 picks one) on network
// "quic", "quic4" or "quic6". The listener's Accept returns a *Link for each
// QUIC connection whose first stream has arrived; a connection that is slow
// to open its stream does not hold up others.
//
// As with TCP, closing the listener stops accepting but leaves accepted links
// running; the UDP socket is closed when the listener and all its links are.
// ctx bounds only the setup, not the listener's life.
func (t *Transport) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	udpNet, err := udpNetwork(network)
	if err != nil {
		return nil, opErr(err)
	}
	laddrs, err := t.resolveUDPAddrs(ctx, udpNet, addr)
	if err != nil {
		return nil, opErr(err)
	}
	laddr := laddrs[0] // as net.Listen: the first address
	tlsConf, err := t.serverTLS()
	if err != nil {
		return nil, opErr(err)
	}
	udp, err := net.ListenUDP(udpNet, laddr)
	if err != nil {
		return nil, opErr(err)
	}
	tr := &quicgo.Transport{Conn: udp}
	ql, err := tr.Listen(tlsConf, t.quicConfig(true))
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, opErr(err)
	}
	return newListener(ql, &socket{tr: tr, udp: udp}, t.handshakeTimeout(), t.maxIdleTimeout()), nil
}

// udpNetwork maps a quic network name to the UDP network under it.
func udpNetwork(network string) (string, error) {
	switch network {
	case "quic":
		return "udp", nil
	case "quic4":
		return "udp4", nil
	case "quic6":
		return "udp6", nil
	}
	return "", errUnknownNetwork
}

// resolveUDPAddrs resolves addr with ctx, as net.ResolveUDPAddr does without,
// to every address of the host (at least one), in the resolver's order.
func (t *Transport) resolveUDPAddrs(ctx context.Context, udpNet, addr string) ([]*net.UDPAddr, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	r := t.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	port, err := r.LookupPort(ctx, udpNet, portStr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return []*net.UDPAddr{{Port: port}}, nil
	}
	ipNet := map[string]string{"udp": "ip", "udp4": "ip4", "udp6": "ip6"}[udpNet]
	ips, err := r.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	addrs := make([]*net.UDPAddr, len(ips))
	for i, ip := range ips {
		addrs[i] = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return addrs, nil
}

func (t *Transport) quicConfig(listening bool) *quicgo.Config {
	conf := &quicgo.Config{
		HandshakeIdleTimeout:  t.handshakeTimeout(),
		MaxIdleTimeout:        t.maxIdleTimeout(),
		KeepAlivePeriod:       t.keepAlivePeriod(),
		MaxIncomingStreams:    -1, // the listener never opens streams
		MaxIncomingUniStreams: -1,
	}
	if listening {
		conf.MaxIncomingStreams = 1 // one link per connection
	}
	return conf
}

func (t *Transport) clientTLS(addr string) *tls.Config {
	var conf *tls.Config
	if t.TLS == nil {
		conf = &tls.Config{InsecureSkipVerify: true}
	} else {
		conf = t.TLS.Clone()
	}
	conf.NextProtos = []string{ALPN}
	if conf.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			conf.ServerName = host
		}
	}
	return conf
}

func (t *Transport) serverTLS() (*tls.Config, error) {
	var conf *tls.Config
	if t.TLS == nil {
		cert, err := selfSignedCertificate()
		if err != nil {
			return nil, err
		}
		conf = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else {
		if len(t.TLS.Certificates) == 0 && t.TLS.GetCertificate == nil && t.TLS.GetConfigForClient == nil {
			return nil, errNoCertificate // as the tcp transport: every handshake would fail
		}
		conf = t.TLS.Clone()
	}
	conf.NextProtos = []string{ALPN}
	return conf, nil
}

// errNoCertificate reports a server TLS config that could never complete a
// handshake.
var errNoCertificate = errors.New("TLS config has no certificate (set Certificates, GetCertificate or GetConfigForClient)")

func (t *Transport) keepAlivePeriod() time.Duration {
	return orDefault(t.KeepAlivePeriod, DefaultKeepAlivePeriod)
}

func (t *Transport) maxIdleTimeout() time.Duration {
	return orDefault(t.MaxIdleTimeout, DefaultMaxIdleTimeout)
}

func (t *Transport) handshakeTimeout() time.Duration {
	return orDefault(t.HandshakeTimeout, DefaultHandshakeTimeout)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
