package core

import (
	"fmt"
	"time"

	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// Config holds every knob of a node. Start from DefaultConfig.
type Config struct {
	// Logger receives the node's logs. Nothing is logged per frame above Trace.
	Logger hclog.Logger

	// StreamWindow is the credit granted to each new stream (bytes the peer may
	// send before the application reads). It grows with measured round-trip
	// time up to MaxStreamWindow.
	StreamWindow uint32
	// MaxStreamWindow caps the auto-tuned window of one stream.
	MaxStreamWindow uint32
	// LinkWindow is the receive budget of one link: the most bytes it buffers
	// for all its streams together, whatever their number.
	LinkWindow uint32
	// SendBuffer is how many bytes Write may queue on a stream before it
	// blocks. On TCP and Unix links, Writes of 16 KiB or more do not copy into
	// it: they lend their buffer to the link until the writer has taken it
	// (see Stream.Write).
	SendBuffer int
	// MaxFrame is the largest frame payload this node accepts.
	MaxFrame uint32
	// MaxStreams caps the streams open on one link; further opens are refused.
	MaxStreams int
	// MaxLinks caps the node's links; further inbound links are closed before
	// their greeting and further Joins fail. Each link holds a read buffer of
	// MaxFrame bytes and two goroutines.
	MaxLinks int
	// Backlog is the accept queue of each listener; a full queue refuses opens.
	Backlog int
	// HopLimit is the hop budget of a stream this node opens.
	HopLimit uint8

	// HandshakeTimeout bounds the greeting exchange of a new link.
	HandshakeTimeout time.Duration
	// KeepAlive is how long a link may be silent before this node pings it.
	KeepAlive time.Duration
	// DeadTimeout is how long a link may receive nothing before it is dead.
	DeadTimeout time.Duration
	// WriteTimeout bounds one write to a link; a link that cannot take bytes
	// for that long is dead.
	WriteTimeout time.Duration

	// Caps are the capability bits announced to peers (wire.Cap*).
	Caps uint32
}

// DefaultConfig returns the defaults, each chosen so that a million idle
// streams and a few bulk ones share a link well.
func DefaultConfig() Config {
	return Config{
		Logger:           hclog.NewNullLogger(),
		StreamWindow:     256 << 10, // as yamux; enough for a fast start on a LAN
		MaxStreamWindow:  16 << 20,  // 16 MiB covers 1 Gbit/s at 130 ms
		LinkWindow:       64 << 20,  // 256 stalled streams at the initial window fit
		SendBuffer:       128 << 10, // more only adds data that goes cold in the cache before it is sent
		MaxFrame:         64 << 10,
		MaxStreams:       1 << 20,
		MaxLinks:         4096,
		Backlog:          1024,
		HopLimit:         16,
		HandshakeTimeout: 10 * time.Second,
		KeepAlive:        5 * time.Second,
		DeadTimeout:      15 * time.Second,
		WriteTimeout:     15 * time.Second,
		Caps:             wire.CapRouter | wire.CapServer | wire.CapClient,
	}
}

// Verify reports the first setting that cannot work.
func (c *Config) Verify() error {
	switch {
	case c.Logger == nil:
		return fmt.Errorf("astranet: config: Logger is nil")
	case c.StreamWindow < wire.MinWindow:
		return fmt.Errorf("astranet: config: StreamWindow %d below %d", c.StreamWindow, wire.MinWindow)
	case c.MaxStreamWindow < c.StreamWindow:
		return fmt.Errorf("astranet: config: MaxStreamWindow %d below StreamWindow %d", c.MaxStreamWindow, c.StreamWindow)
	case c.LinkWindow < c.MaxStreamWindow:
		return fmt.Errorf("astranet: config: LinkWindow %d below MaxStreamWindow %d", c.LinkWindow, c.MaxStreamWindow)
	case c.SendBuffer < 1:
		return fmt.Errorf("astranet: config: SendBuffer %d must be positive", c.SendBuffer)
	case c.MaxFrame < wire.MinFramePayload || c.MaxFrame > wire.MaxFramePayload:
		return fmt.Errorf("astranet: config: MaxFrame %d outside [%d, %d]", c.MaxFrame, wire.MinFramePayload, wire.MaxFramePayload)
	case c.MaxStreams < 1 || c.MaxStreams > 1<<30:
		return fmt.Errorf("astranet: config: MaxStreams %d outside [1, 2^30]", c.MaxStreams)
	case c.MaxLinks < 1:
		return fmt.Errorf("astranet: config: MaxLinks %d must be positive", c.MaxLinks)
	case c.Backlog < 1:
		return fmt.Errorf("astranet: config: Backlog %d must be positive", c.Backlog)
	case c.HopLimit < 1:
		return fmt.Errorf("astranet: config: HopLimit must be at least 1")
	case c.HandshakeTimeout <= 0 || c.KeepAlive <= 0 || c.DeadTimeout <= 0 || c.WriteTimeout <= 0:
		return fmt.Errorf("astranet: config: timeouts must be positive")
	case c.DeadTimeout <= c.KeepAlive:
		return fmt.Errorf("astranet: config: DeadTimeout %v must exceed KeepAlive %v", c.DeadTimeout, c.KeepAlive)
	}
	return nil
}
