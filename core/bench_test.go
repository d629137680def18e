package core

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkStreamThroughput: one stream over a TCP loopback link, 32 KiB
// writes. Compare with BenchmarkRawTCPThroughput.
func BenchmarkStreamThroughput(b *testing.B) {
	x, y := newNode(b, testConfig()), newNode(b, testConfig())
	connect(b, x, y)
	ln, _ := y.Bind(7, "")
	done := make(chan int64)
	go func() {
		s, err := ln.AcceptStream()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, s)
		done <- n
	}()
	s, err := x.Dial(ctxTimeout(b, 5*time.Second), Target{Node: y.ID(), Port: 7})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseWrite()
	<-done
	s.Close()
}

func BenchmarkRawTCPThroughput(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	<-done
	c.Close()
}

// BenchmarkStreamRTT: 64-byte ping-pong on one stream over TCP loopback.
// Compare with BenchmarkRawTCPRTT.
func BenchmarkStreamRTT(b *testing.B) {
	x, y := newNode(b, testConfig()), newNode(b, testConfig())
	connect(b, x, y)
	ln, _ := y.Bind(7, "")
	echo(b, ln)
	s, err := x.Dial(ctxTimeout(b, 5*time.Second), Target{Node: y.ID(), Port: 7})
	if err != nil {
		b.Fatal(err)
	}
	pingPong(b, s)
	s.Close()
}

func BenchmarkRawTCPRTT(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	pingPong(b, c)
	c.Close()
}

func pingPong(b *testing.B, c net.Conn) {
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
