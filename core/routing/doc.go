// Package routing is astranet's embedded routing: a distance-vector protocol
// with sequence numbers and a feasibility condition, after Babel (RFC 8966),
// simplified for a network whose destinations are node ids.
//
// It implements core.Routing. A node runs it as its control plane: routing
// hears link events and the KindRouting CONTROL messages of its neighbours,
// and publishes, for every node it can reach, the link of the next hop. The
// data plane (core's dialler and circuit forwarding) reads that table and
// never waits on routing.
//
// The algorithm in a few sentences. Every node originates a route to itself
// tagged with a sequence number that only it increments. Every Interval, and
// soon after a change, it sends each neighbour an update listing, for every
// destination it has selected a route to, the destination's id, the route's
// sequence number and its metric: the sum of link costs along the path, each
// cost one hop plus the link's round-trip time. A receiver adds the cost of
// the link the update came over and selects, per destination, the feasible
// route of smallest metric. An update is feasible only if its sequence number
// is newer than the receiver's feasibility distance for that destination, or
// equal with a strictly smaller metric; as no node ever selects a route that
// could lead back through itself, routing loops cannot form, even while the
// network changes. A node left with only unfeasible routes sends a sequence
// number request towards the origin, which answers by advertising a newer
// sequence number. Lost links withdraw their routes at once, silent routes
// expire, and a lost route is advertised for a while as a retraction
// (infinite metric). A node without wire.CapRouter advertises only itself,
// so that no transit traffic is sent through it; Withdraw (called as a node
// begins to shut down) makes a router one of those, retracting at once every
// route it advertised.
//
// docs/PROTOCOL.md section 11 specifies the messages, the metric and the
// timers.
package routing
