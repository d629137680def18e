// Package discovery holds astranet's embedded service discovery pieces: the
// instance selectors a dial by service name uses (random, round-robin,
// consistent hashing that every node computes alike, nearest by route
// metric), and, beside them, implementations of core.Discovery.
//
// Mesh is the default implementation: gossip over the astranet mesh itself.
// Every node floods a snapshot of its own services, numbered by a sequence
// number only it increments, to its neighbours, who pass on what is newer
// than what they hold and catch up each new neighbour at once. Snapshots are
// re-announced as keep-alives; an origin that falls silent expires, and a
// neighbour that no route reaches any more is dropped at once. Each node
// publishes the union of the latest snapshots to its core.Node, whose data
// plane reads it without waiting, and Mesh.Watch streams the same view.
// Changes from neighbours are published off the links' readers, a burst of
// them at once, so that taking a snapshot costs the same however much the
// node holds; and what neighbours can make a node hold is bounded
// (MeshOptions.MaxOrigins, MeshOptions.MaxServiceBytes). The messages are
// specified in docs/PROTOCOL.md, section 12.
package discovery
