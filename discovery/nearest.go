package discovery

import (
	"math"
	"math/rand/v2"

	"github.com/astranet-go/astranet/core"
)

// Nearest returns a selector that picks the instance whose node has the
// lowest route metric in the table routes returns (typically a node's Routes
// method), breaking ties at random. Instances on nodes the table does not
// list rank after all others. It reads the table on every pick; routing keeps
// it in memory, so that costs no waiting.
func Nearest(routes func() []core.Route) Selector {
	return nearest(0, routes)
}

// Nearest is the package's Nearest for this mesh's node: its route table, and
// the node itself counted at metric 0, ahead of every other node (dialling
// the node itself needs core.Options.LoopBack).
func (m *Mesh) Nearest() Selector {
	return func(ss []core.Service) core.Service {
		return nearest(core.NodeID(m.self.Load()), m.routeTable.Load().(func() []core.Route))(ss)
	}
}

// nearest ranks self, if not 0, at metric 0.
func nearest(self core.NodeID, routes func() []core.Route) Selector {
	return func(ss []core.Service) core.Service {
		// Metrics of the candidates' nodes only: the table may be far larger.
		const unknown = math.MaxUint32 + 1 // after any real metric
		metric := make(map[core.NodeID]uint64, len(ss))
		for _, s := range ss {
			metric[s.Node] = unknown
		}
		for _, r := range routes() {
			if m, ok := metric[r.Dst]; ok && uint64(r.Metric) < m {
				metric[r.Dst] = uint64(r.Metric)
			}
		}
		if _, ok := metric[self]; ok && self != 0 {
			metric[self] = 0
		}
		best, ties := uint64(math.MaxUint64), 0
		var pick core.Service
		for _, s := range ss {
			m := metric[s.Node]
			switch {
			case m < best:
				best, ties, pick = m, 1, s
			case m == best:
				// Reservoir sampling: each tied instance ends up picked with
				// equal chance, in one pass.
				ties++
				if rand.N(ties) == 0 {
					pick = s
				}
			}
		}
		return pick
	}
}
