package routing

import (
	"testing"
	"time"
)

func TestDefaultOptions(t *testing.T) {
	o := DefaultOptions()
	if err := o.Verify(); err != nil {
		t.Fatal(err)
	}
	switch {
	case o.Interval != time.Second:
		t.Errorf("Interval %v", o.Interval)
	case o.Expiry != 3500*time.Millisecond:
		t.Errorf("Expiry %v", o.Expiry)
	case o.TriggeredDelay != 50*time.Millisecond:
		t.Errorf("TriggeredDelay %v", o.TriggeredDelay)
	case o.HoldDown != o.Expiry:
		t.Errorf("HoldDown %v", o.HoldDown)
	case o.SourceGC != 3*time.Minute:
		t.Errorf("SourceGC %v", o.SourceGC)
	case o.MaxMetric != Infinity || o.MaxRTTCost != 2560 || o.RequestHops != 16 || o.MaxMessage != 60<<10 || o.MaxDestinations != 1<<16:
		t.Errorf("limits %+v", o)
	case o.Logger == nil:
		t.Error("no logger")
	}
	// Defaults follow Interval.
	if o := (Options{Interval: 50 * time.Millisecond}); o.Verify() != nil {
		t.Error(o.Verify())
	}
}

func TestOptionsVerify(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"interval too short", Options{Interval: 9 * time.Millisecond}},
		{"expiry not above interval", Options{Interval: time.Second, Expiry: time.Second}},
		{"expiry too long", Options{Expiry: 656 * time.Second}},
		{"triggered delay above interval", Options{TriggeredDelay: 2 * time.Second}},
		{"triggered delay negative", Options{TriggeredDelay: -1}},
		{"hold-down negative", Options{HoldDown: -1}},
		{"source GC below hold-down", Options{HoldDown: time.Minute, SourceGC: time.Second}},
		{"max metric below a hop", Options{MaxMetric: HopCost}},
		{"negative destinations", Options{MaxDestinations: -1}},
		{"message too small", Options{MaxMessage: 63}},
		{"message too large", Options{MaxMessage: 60<<10 + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.Verify(); err == nil {
				t.Fatalf("Verify accepted %+v", tt.o)
			}
		})
	}
}
