package routing

import (
	"testing"
	"time"
)

func TestLinkCost(t *testing.T) {
	tests := []struct {
		rtt  time.Duration
		want uint16
	}{
		{0, HopCost},
		{-time.Millisecond, HopCost},
		{99 * time.Microsecond, HopCost},
		{100 * time.Microsecond, HopCost + 1},
		{time.Millisecond, HopCost + 10},
		{256 * time.Millisecond, HopCost + 2560},
		{time.Second, HopCost + 2560}, // capped
		{time.Hour, HopCost + 2560},
	}
	for _, tt := range tests {
		if got := linkCost(tt.rtt, DefaultMaxRTTCost); got != tt.want {
			t.Errorf("linkCost(%v) = %d, want %d", tt.rtt, got, tt.want)
		}
	}
	if got := linkCost(time.Hour, 0xFFFF-HopCost); got != 0xFFFF {
		t.Errorf("linkCost at the largest cap = %d", got)
	}
}

func TestAddMetric(t *testing.T) {
	tests := []struct{ m, cost, want uint16 }{
		{0, 256, 256},
		{1000, 300, 1300},
		{0xFFFE, 1, Infinity},
		{0xFF00, 0x0200, Infinity},
		{Infinity, 256, Infinity},
	}
	for _, tt := range tests {
		if got := addMetric(tt.m, tt.cost); got != tt.want {
			t.Errorf("addMetric(%d, %d) = %d, want %d", tt.m, tt.cost, got, tt.want)
		}
	}
}

func TestSeqnoNewer(t *testing.T) {
	tests := []struct {
		a, b uint16
		want bool
	}{
		{1, 0, true},
		{0, 1, false},
		{5, 5, false},
		{0, 0xFFFF, true}, // wrapped
		{0xFFFF, 0, false},
		{0x7FFF, 0, true},
		{0x8000, 0, false}, // half way round counts as older
		{100, 0x8100, true},
	}
	for _, tt := range tests {
		if got := seqnoNewer(tt.a, tt.b); got != tt.want {
			t.Errorf("seqnoNewer(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFeasible(t *testing.T) {
	fd := distance{seqno: 10, metric: 1000}
	tests := []struct {
		seqno, metric uint16
		want          bool
	}{
		{10, 999, true},        // same seqno, strictly smaller metric
		{10, 1000, false},      // equal metric: could be a loop through this node
		{10, 1001, false},      // larger
		{11, 60000, true},      // newer seqno, any finite metric
		{9, 0, false},          // older seqno, even at metric 0
		{11, Infinity, false},  // a retraction is never selected
		{0xFFFF, 0, false},     // far behind, modulo 2^16
		{10 + 0x7FFF, 5, true}, // as far ahead as can be
	}
	for _, tt := range tests {
		if got := fd.feasible(tt.seqno, tt.metric); got != tt.want {
			t.Errorf("%+v.feasible(%d, %d) = %v, want %v", fd, tt.seqno, tt.metric, got, tt.want)
		}
	}
}

func TestDistanceLower(t *testing.T) {
	fd := distance{seqno: 10, metric: 1000}
	tests := []struct {
		seqno, metric uint16
		want          distance
	}{
		{10, 900, distance{10, 900}},
		{10, 1100, distance{10, 1000}}, // a worse metric never raises it
		{11, 5000, distance{11, 5000}}, // a newer seqno replaces it
		{9, 10, distance{10, 1000}},    // an older seqno is ignored
	}
	for _, tt := range tests {
		if got := fd.lower(tt.seqno, tt.metric); got != tt.want {
			t.Errorf("lower(%d, %d) = %+v, want %+v", tt.seqno, tt.metric, got, tt.want)
		}
	}
}
