// Package core is astranet's engine: nodes, links, streams, circuits, flow
// control and keep-alive. It speaks the wire format of core/wire over any
// reliable byte stream and consumes three small interfaces — Transport,
// Discovery and Routing — without knowing any implementation of them.
//
// Each link has exactly one reader and one writer goroutine, and a keep-alive
// timer; streams are small structs with no goroutine or timer of their own (a
// timer exists only while an application has set a deadline). Every queue is
// bounded: per-stream and per-link credit, an accept backlog per listener, a
// cap on streams per link and on frame size, and a handshake timeout.
//
// The writer sends control frames first, then FINs (they need no credit),
// then streams with a short message queued (at most 4 KiB when their turn
// comes), for up to half of each write call, then the rest in turn, one frame
// each per turn. A stream that is behind in reading makes the reader yield to
// it once it holds 512 KiB, so that it reads while the bytes are in the cache.
//
// Four shortcuts save a hand-off or a copy. On TCP and Unix links, the reader
// hands the socket to the Read of a stream it has fed 64 DATA frames in a
// row, which then reads its frames itself, as on a bare socket, until a frame
// for anything else arrives, its stream changes (Close, a failure, a new
// read deadline) or its application stays away from Read for 1 ms; then the
// reader reads on (handover.go). A Read that waits on a stream
// that has been read from lends its buffer, and the reader copies the next
// bytes straight into it. On TCP and Unix links, when the link is idle and the
// stream has nothing queued, a Write hands its bytes to the kernel from the
// writing goroutine, straight from the caller's buffer, with a non-blocking
// writev: a large write (16 KiB or more), or a short one on a stream whose
// Read has waited after a write (request and response). The writer sends from
// copies whatever the kernel does not take at once. And when the link is
// busy, a large Write lends its buffer to the send queue instead of copying
// it there, and waits until the writer has taken it: the writer hands the
// kernel those bytes straight from the caller's buffer with a non-blocking
// writev, and copies what the kernel does not take before it waits for the
// socket. With many bulk streams, a copy made at Write time has left the CPU
// cache by the time the writer sends it; the lent buffer is still warm.
package core
