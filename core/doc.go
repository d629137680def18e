// Package core is astranet's engine: nodes, links, streams, circuits, flow
// control and keep-alive. It speaks the wire format of core/wire over any
// reliable byte stream and consumes three small interfaces — Transport,
// Discovery and Routing — without knowing any implementation of them.
//
// Each link has exactly one reader and one writer goroutine; streams are small
// structs with no goroutine or timer of their own (a timer exists only while an
// application has set a deadline). Every queue is bounded: per-stream and
// per-link credit, an accept backlog per listener, a cap on streams per link
// and on frame size, and a handshake timeout.
//
// Two shortcuts save a hand-off each on the latency path. A Read that waits
// on a stream that has been read from lends its buffer, and the reader copies
// the next bytes straight into it. On TCP and Unix links, a stream whose Read
// has waited after a write (request and response) sends a short write from
// the writing goroutine when the link is idle, with a non-blocking writev; the
// writer sends whatever the kernel does not take at once.
package core
