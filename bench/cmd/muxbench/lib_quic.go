package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// quicLib is github.com/quic-go/quic-go native bidirectional streams over one
// QUIC connection, with default flow-control windows. MaxIncomingStreams
// (default 100 concurrent) is raised to 2^21 to fit the idle, manyactive and
// busyecho workloads; TLS uses a fresh self-signed certificate and ALPN "bench".
type quicLib struct{}

func init() { register(quicLib{}) }

func (quicLib) Name() string { return "quic" }

const quicServerName = "bench.local"

func (quicLib) Setup() (Opener, Acceptor, func(), error) {
	cert, pool, err := selfSignedCert()
	if err != nil {
		return nil, nil, nil, err
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}
	cliTLS := &tls.Config{RootCAs: pool, ServerName: quicServerName, NextProtos: []string{"bench"}}
	cfg := &quic.Config{MaxIncomingStreams: 1 << 21}

	ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *quic.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept(ctx)
		ch <- res{c, err}
	}()
	client, err := quic.DialAddr(ctx, ln.Addr().String(), cliTLS, cfg)
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	r := <-ch
	if r.err != nil {
		client.CloseWithError(0, "")
		ln.Close()
		return nil, nil, nil, r.err
	}
	server := r.c
	cleanup := func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
		ln.Close()
	}
	return quicOpener{client}, quicAcceptor{server}, cleanup, nil
}

type quicOpener struct{ c *quic.Conn }

func (o quicOpener) Open() (net.Conn, error) {
	s, err := o.c.OpenStreamSync(context.Background())
	if err != nil {
		return nil, err
	}
	return quicStream{s, o.c}, nil
}

type quicAcceptor struct{ c *quic.Conn }

func (a quicAcceptor) Accept() (net.Conn, error) {
	s, err := a.c.AcceptStream(context.Background())
	if err != nil {
		return nil, err
	}
	return quicStream{s, a.c}, nil
}

// quicStream makes a *quic.Stream a net.Conn. Close closes both directions,
// as net.Conn's Close does (quic's own Close only ends the send side).
type quicStream struct {
	*quic.Stream
	conn *quic.Conn
}

func (s quicStream) LocalAddr() net.Addr  { return s.conn.LocalAddr() }
func (s quicStream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

func (s quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

// selfSignedCert makes a throwaway ECDSA certificate for quicServerName and a
// pool that trusts it.
func selfSignedCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: quicServerName},
		DNSNames:              []string{quicServerName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
