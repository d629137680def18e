package quic

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// listen starts a listener on an ephemeral loopback port and closes it when
// the test ends.
func listen(t testing.TB, tr *Transport) net.Listener {
	t.Helper()
	ln, err := tr.Listen(context.Background(), "quic", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pair returns the two ends of one link: the dialled end and the accepted
// end. The dialler writes one byte first (the listener sees the stream only
// then), which the accepted end reads, so both ends start clean.
func pair(t testing.TB, dialer *Transport, ln net.Listener) (*Link, *Link, error) {
	t.Helper()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
			}
		}
		ch <- accepted{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c1, err := dialer.Dial(ctx, "quic", ln.Addr().String())
	if err != nil {
		// Unblock the Accept goroutine.
		ln.Close()
		<-ch
		return nil, nil, err
	}
	if _, err := c1.Write([]byte{0}); err != nil {
		c1.Close()
		ln.Close()
		<-ch
		return nil, nil, err
	}
	lk := c1.(*Link)
	select {
	case a := <-ch:
		if a.err != nil {
			lk.Close()
			return nil, nil, a.err
		}
		return lk, a.c.(*Link), nil
	case <-lk.QUICConn().Context().Done():
		err = context.Cause(lk.QUICConn().Context()) // the listener refused the connection
	case <-time.After(5 * time.Second):
		err = errors.New("link not accepted within 5 s")
	}
	lk.Close()
	ln.Close()
	if a := <-ch; a.c != nil {
		a.c.Close()
	}
	return nil, nil, err
}

// certKit is a test CA and certificates it issued.
type certKit struct {
	pool   *x509.CertPool
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newCertKit(t testing.TB) *certKit {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "astranet test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &certKit{pool: pool, caCert: cert, caKey: key}
}

// issue returns a certificate for 127.0.0.1 valid for both server and client
// authentication.
func (k *certKit) issue(t testing.TB, serial int64) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "astranet test node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.caCert, &key.PublicKey, k.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
