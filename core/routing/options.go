package routing

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configure the routing of one node. The zero value of a field
// selects its default; DefaultOptions lists them.
type Options struct {
	// Logger receives routing's logs. Malformed messages are logged at Debug.
	// Default: hclog.NewNullLogger().
	Logger hclog.Logger

	// Interval is the period of the full update sent to every neighbour; it
	// doubles as the hello: a neighbour that hears nothing from a route for
	// Expiry drops it. Default 1 s; at least 10 ms.
	Interval time.Duration
	// Expiry is how long a neighbour keeps a route this node advertised
	// without hearing it again. It travels in every update, so each receiver
	// applies the sender's value. Default 3.5 × Interval; more than Interval,
	// at most 655.35 s (the field counts 10 ms units).
	Expiry time.Duration
	// TriggeredDelay is the least time between two triggered updates (those
	// sent on a change rather than on the Interval): changes that land within
	// it are batched into one update. Default Interval / 20.
	TriggeredDelay time.Duration
	// HoldDown is how long a destination that lost its last usable route is
	// still advertised, as a retraction (metric infinity), before its entry is
	// collected. Default Expiry.
	HoldDown time.Duration
	// SourceGC is how long the feasibility distance of a destination without
	// routes is kept before it is collected. It must outlive every stale copy
	// of the destination's routes in the network. Default 3 min; at least
	// HoldDown.
	SourceGC time.Duration

	// MaxMetric is the metric at and beyond which a destination counts as
	// unreachable. Default and maximum 0xFFFF, the infinity of the wire
	// format; a smaller value bounds the length of the paths used.
	MaxMetric uint16
	// MaxRTTCost caps the part of a link's cost that comes from its round
	// trip, in units of 100 µs. Default 2560 (256 ms, ten hops' worth).
	MaxRTTCost uint16
	// RequestHops is the hop count of a sequence number request this node
	// starts. Default 16, core's default hop limit: no stream crosses more
	// hops than that.
	RequestHops uint8
	// MaxDestinations bounds the nodes this node keeps routes to, so that a
	// peer advertising made-up ids cannot exhaust its memory; updates about
	// further nodes are dropped. Default 65536.
	MaxDestinations int
	// MaxMessage is the largest message body this node sends; a longer update
	// is split. Default and maximum 60 KiB; at least 64 bytes. A message a peer
	// refuses as too large for its frames is split again to fit the smallest
	// frame any peer may announce.
	MaxMessage int
}

// Defaults, as DefaultOptions returns them.
const (
	DefaultInterval        = time.Second
	DefaultSourceGC        = 3 * time.Minute
	DefaultMaxRTTCost      = 2560
	DefaultRequestHops     = 16
	DefaultMaxMessage      = 60 << 10
	DefaultMaxDestinations = 1 << 16
)

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() Options {
	var o Options
	o.fill()
	return o
}

// fill replaces zero fields with their defaults.
func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Expiry == 0 {
		o.Expiry = o.Interval * 7 / 2
	}
	if o.TriggeredDelay == 0 {
		o.TriggeredDelay = o.Interval / 20
	}
	if o.HoldDown == 0 {
		o.HoldDown = o.Expiry
	}
	if o.SourceGC == 0 {
		o.SourceGC = DefaultSourceGC
		if o.SourceGC < o.HoldDown {
			o.SourceGC = o.HoldDown
		}
	}
	if o.MaxMetric == 0 {
		o.MaxMetric = Infinity
	}
	if o.MaxRTTCost == 0 {
		o.MaxRTTCost = DefaultMaxRTTCost
	}
	if o.RequestHops == 0 {
		o.RequestHops = DefaultRequestHops
	}
	if o.MaxDestinations == 0 {
		o.MaxDestinations = DefaultMaxDestinations
	}
	if o.MaxMessage == 0 {
		o.MaxMessage = DefaultMaxMessage
	}
}

// Verify reports the first setting that cannot work, after defaults are
// filled in.
func (o Options) Verify() error {
	o.fill()
	switch {
	case o.Interval < 10*time.Millisecond:
		return fmt.Errorf("routing: Interval %v below 10ms", o.Interval)
	case o.Expiry <= o.Interval || o.Expiry > maxLifetime:
		return fmt.Errorf("routing: Expiry %v outside (Interval %v, %v]", o.Expiry, o.Interval, maxLifetime)
	case o.TriggeredDelay < 0 || o.TriggeredDelay > o.Interval:
		return fmt.Errorf("routing: TriggeredDelay %v outside [0, Interval %v]", o.TriggeredDelay, o.Interval)
	case o.HoldDown < 0:
		return fmt.Errorf("routing: HoldDown %v is negative", o.HoldDown)
	case o.SourceGC < o.HoldDown:
		return fmt.Errorf("routing: SourceGC %v below HoldDown %v", o.SourceGC, o.HoldDown)
	case o.MaxMetric <= HopCost:
		return fmt.Errorf("routing: MaxMetric %d leaves no room for one hop (%d)", o.MaxMetric, HopCost)
	case o.MaxRTTCost >= Infinity-HopCost:
		return fmt.Errorf("routing: MaxRTTCost %d would make a slow link cost as much as an unreachable one (%d with the hop)", o.MaxRTTCost, Infinity)
	case o.MaxDestinations < 0:
		return fmt.Errorf("routing: MaxDestinations %d is negative", o.MaxDestinations)
	case o.MaxMessage < 64 || o.MaxMessage > DefaultMaxMessage:
		return fmt.Errorf("routing: MaxMessage %d outside [64, %d]", o.MaxMessage, DefaultMaxMessage)
	}
	return nil
}
