package core

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

func TestSmokeEcho(t *testing.T) {
	a, _ := New(Options{Config: DefaultConfig()})
	b, _ := New(Options{Config: DefaultConfig()})
	defer a.Close()
	defer b.Close()
	c1, c2 := net.Pipe()
	go a.Attach(c1)
	go b.Attach(c2)
	ln, err := b.Bind(7, "echo")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(s, s); s.Close() }()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("hello"), 200000)
	go func() { s.Write(msg); s.CloseWrite() }()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes err %v", len(got), err)
	}
	s2, err := a.Dial(ctx, Target{Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	_, err = a.Dial(ctx, Target{Node: b.ID(), Port: 8})
	t.Log(err)
	_, err = a.Dial(ctx, Target{Service: "nope"})
	t.Log(err)
}
