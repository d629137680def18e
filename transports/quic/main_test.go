package quic

import (
	"testing"

	"go.uber.org/goleak"
)

// No goleak options are needed: quic-go starts no goroutines of its own
// beyond those of the transports and connections we create and close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
