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
package core
