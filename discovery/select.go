package discovery

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"

	"github.com/astranet-go/astranet/core"
)

// A Selector picks one of the instances of a service. It is never given an
// empty slice.
type Selector func([]core.Service) core.Service

// Random picks an instance uniformly at random.
func Random(ss []core.Service) core.Service { return ss[rand.N(len(ss))] }

// RoundRobin returns a selector that walks the instances in turn. The order
// is the discovery snapshot's, which is stable while instances do not change.
func RoundRobin() Selector {
	var next atomic.Uint64
	return func(ss []core.Service) core.Service {
		return ss[(next.Add(1)-1)%uint64(len(ss))]
	}
}

// Rendezvous returns a selector that hashes key with each instance (highest
// random weight hashing). Every node picks the same instance for the same key
// and instances, keys spread evenly, and when an instance leaves only the keys
// that were on it move.
func Rendezvous(key string) Selector {
	return func(ss []core.Service) core.Service {
		best, bestW := 0, uint64(0)
		for i, s := range ss {
			if w := weight(key, s); i == 0 || w > bestW {
				best, bestW = i, w
			}
		}
		return ss[best]
	}
}

func weight(key string, s core.Service) uint64 {
	h := fnv.New64a()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.Node))
	binary.BigEndian.PutUint32(b[8:], s.Port)
	h.Write(b[:])
	h.Write([]byte(key))
	// fnv's low bits mix poorly for short keys; finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
