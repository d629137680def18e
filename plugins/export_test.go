package plugins

// Dropped counts the events the current routing plugin process lost for a
// full queue.
func (r *Routing) Dropped() uint64 {
	if p := r.sup.cur.Load(); p != nil {
		return routingClient(p).Dropped()
	}
	return 0
}
