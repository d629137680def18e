// Package wire is astranet's wire format: the link greeting and the frames
// that follow it. It encodes and decodes bytes and validates every field a peer
// sends; it knows nothing of links, streams or sockets.
//
// A link starts with a 32-byte greeting from each side (magic "ASTN", version,
// node id, capabilities, limits), then carries frames. Every frame has a 9-byte
// header — 24-bit payload length, type, flags, 32-bit circuit id — followed by
// its payload. docs/PROTOCOL.md is the prose specification; this package is the
// reference implementation of it.
//
// Decoders never panic and never trust a length: a malformed input yields a
// *ProtocolError that says what was wrong.
package wire
