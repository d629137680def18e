package core

import (
	"io"
	"net"
	"testing"
	"time"
)

// drain reads r to its end in 32 KiB reads, as the harness (bench/) does, and
// returns the byte count. (io.Copy to io.Discard would read 8 KiB at a time.)
func drain(r io.Reader) int64 {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err != nil {
			return n
		}
	}
}

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
		done <- drain(s)
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
		n := drain(c)
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

// BenchmarkBulk100 is the harness's bulk100 in miniature, for profiling: 100
// streams writing at once over one TCP link.
func BenchmarkBulk100(b *testing.B) {
	x, y := newNode(b, testConfig()), newNode(b, testConfig())
	connect(b, x, y)
	ln, _ := y.Bind(7, "")
	const streams = 100
	per := int64(b.N) * (32 << 10) / streams
	done := make(chan int64, streams)
	go func() {
		for range streams {
			s, err := ln.AcceptStream()
			if err != nil {
				return
			}
			go func() { done <- drain(s) }()
		}
	}()
	ctx := ctxTimeout(b, time.Minute)
	b.SetBytes(32 << 10)
	b.ResetTimer()
	for range streams {
		s, err := x.Dial(ctx, Target{Node: y.ID(), Port: 7})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			buf := make([]byte, 32<<10)
			for left := per; left > 0; left -= int64(len(buf)) {
				s.Write(buf[:min(int64(len(buf)), left)])
			}
			s.Close()
		}()
	}
	for range streams {
		<-done
	}
}

// BenchmarkOpenParallel: open, 1-byte echo, close, from 64 goroutines.
func BenchmarkOpenParallel(b *testing.B) {
	x, y := newNode(b, testConfig()), newNode(b, testConfig())
	connect(b, x, y)
	ln, _ := y.Bind(7, "")
	echo(b, ln)
	ctx := ctxTimeout(b, time.Minute)
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		one := []byte{1}
		for pb.Next() {
			s, err := x.Dial(ctx, Target{Node: y.ID(), Port: 7})
			if err != nil {
				b.Error(err)
				return
			}
			s.Write(one)
			s.Read(one)
			s.Close()
		}
	})
}
