package sdk

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff doubles a wait from min to max, with jitter.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// next returns the wait before the next try.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	// Up to a quarter less, so that many plugins do not retry in step.
	return b.cur - time.Duration(rand.Int64N(int64(b.cur)/4+1))
}

// sleep waits for the next try; false when ctx ended first.
func (b *backoff) sleep(ctx context.Context) bool {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
