// TLS secures astranet links with mutual TLS. It makes a certificate
// authority and two node certificates in memory, gives each node its own with
// WithTLS, links them over TCP on the loopback address, and echoes a stream
// across. Each end checks the other's certificate; a node whose certificate
// the authority did not sign cannot join.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/astranet-go/astranet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tls:", err)
		os.Exit(1)
	}
}

func run() error {
	ca, err := newCA("example CA")
	if err != nil {
		return err
	}
	certA, err := ca.issue("node-a")
	if err != nil {
		return err
	}
	certB, err := ca.issue("node-b")
	if err != nil {
		return err
	}
	var seen peers
	a := astranet.New(astranet.WithTLS(ca.config(certA, "node-a", &seen)))
	defer a.Close()
	b := astranet.New(astranet.WithTLS(ca.config(certB, "node-b", &seen)))
	defer b.Close()

	addr, err := b.(interface {
		ListenAddr(network, addr string) (net.Addr, error)
	}).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("node-b %s accepts mutual-TLS links on %s\n", b.ID(), addr)
	if err := a.Join("tcp4", addr.String()); err != nil {
		return err
	}
	fmt.Printf("node-a %s joined node-b\n", a.ID())
	for _, line := range seen.list() {
		fmt.Println(" ", line)
	}

	l, err := b.Bind("", "echo")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // l was closed
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	conn, err := a.Dial("", "echo")
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := "sealed in TLS"
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	reply, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	fmt.Printf("echo over the TLS link: sent %q, got back %q\n", msg, reply)

	// A node with a certificate from another authority is turned away.
	rogueCA, err := newCA("rogue CA")
	if err != nil {
		return err
	}
	certR, err := rogueCA.issue("rogue")
	if err != nil {
		return err
	}
	rogueConfig := ca.config(certR, "rogue", &peers{}) // trusts our CA, but holds a rogue certificate
	rogue := astranet.New(astranet.WithTLS(rogueConfig))
	defer rogue.Close()
	err = rogue.Join("tcp4", addr.String())
	if err == nil {
		return fmt.Errorf("a node with a rogue certificate joined")
	}
	fmt.Printf("a node with a certificate from another authority cannot join: %v\n", err)
	return nil
}

// authority is a certificate authority made in memory.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(name string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{cert: cert, key: key, pool: pool}, nil
}

// issue makes a certificate for a node. A node both dials and accepts
// links, so the certificate serves as client and as server, and names
// 127.0.0.1, the address the other node dials.
func (ca *authority) issue(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// config is a node's TLS config: its certificate, trust in ca for both the
// servers it dials and the clients it accepts, and a note in seen of every
// peer certificate it verified.
func (ca *authority) config(cert tls.Certificate, self string, seen *peers) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				seen.add(fmt.Sprintf("%s verified the certificate of %s (TLS 1.3: %v)",
					self, cs.PeerCertificates[0].Subject.CommonName, cs.Version == tls.VersionTLS13))
			}
			return nil
		},
	}
}

// peers collects what the TLS handshakes verified; they run on the
// transport's goroutines.
type peers struct {
	mu    sync.Mutex
	lines []string
}

func (p *peers) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, s)
}

func (p *peers) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}
