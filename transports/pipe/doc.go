// Package pipe is the in-memory transport: links between nodes of one process,
// with no sockets and no goroutines of its own.
//
// It has two parts. Pipe returns a connected pair of net.Conn values, like
// net.Pipe but buffered: each direction holds up to DefaultBufferSize bytes, so
// a writer does not wait for the reader on every Write, and memory stays
// bounded because a Write blocks while the buffer is full. Transport implements
// the Dial and Listen methods that astranet's core expects of a transport
// (core.Transport) on network "pipe": addresses are names in one process-wide
// table, so Listen(ctx, "pipe", "hub") and Dial(ctx, "pipe", "hub") meet in
// memory. That makes multi-node tests of any topology cheap and deterministic.
//
// Like every transport, pipe knows nothing of astranet frames: it moves bytes.
package pipe
