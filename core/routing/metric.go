package routing

import "time"

// Metric constants. A route's metric is the sum of the costs of the links on
// its path; a link's cost is HopCost plus its round-trip time in units of
// RTTUnit, capped at Options.MaxRTTCost:
//
//	cost = HopCost + min(RTT / RTTUnit, MaxRTTCost)
//
// so that both the number of hops and the latency count, and a hop always
// costs something.
const (
	// Infinity is the metric of an unreachable destination; an update carrying
	// it retracts the route.
	Infinity = 0xFFFF
	// HopCost is the part of every link's cost that does not depend on its
	// round trip.
	HopCost = 256
	// RTTUnit is the round trip that adds one to a link's cost.
	RTTUnit = 100 * time.Microsecond
)

// switchMargin is how much better a route must be to replace the selected
// one: it keeps round-trip jitter from flapping between equal paths.
const switchMargin = HopCost / 4

// linkCost is the cost of a link with round trip rtt (0: not measured yet).
func linkCost(rtt time.Duration, maxRTTCost uint16) uint16 {
	u := max(rtt/RTTUnit, 0)
	// Saturating: a cost past Infinity must not wrap round to a cheap one.
	return addMetric(HopCost, uint16(min(u, time.Duration(maxRTTCost))))
}

// addMetric adds a link cost to an advertised metric, saturating at Infinity.
func addMetric(m, cost uint16) uint16 {
	return uint16(min(uint32(m)+uint32(cost), Infinity))
}

// seqnoNewer reports whether sequence number a is newer than b, modulo 2^16
// (RFC 8966 section 3.2.1).
func seqnoNewer(a, b uint16) bool { return int16(a-b) > 0 }

// distance is a feasibility distance: the best (seqno, metric) this node has
// advertised for a destination.
type distance struct {
	seqno  uint16
	metric uint16
}

// feasible reports whether an advertised (seqno, metric) may be selected
// under feasibility distance fd: its seqno is newer, or equal with a strictly
// smaller metric. A retraction is never selected, so it does not count.
func (fd distance) feasible(seqno, metric uint16) bool {
	if metric == Infinity {
		return false
	}
	return seqnoNewer(seqno, fd.seqno) || (seqno == fd.seqno && metric < fd.metric)
}

// lower returns fd lowered by an advertisement of (seqno, metric): a newer
// seqno replaces it, an equal seqno keeps the smaller metric.
func (fd distance) lower(seqno, metric uint16) distance {
	switch {
	case seqnoNewer(seqno, fd.seqno):
		return distance{seqno, metric}
	case seqno == fd.seqno && metric < fd.metric:
		return distance{seqno, metric}
	}
	return fd
}
