// Package discovery holds astranet's embedded service discovery pieces: the
// instance selectors a dial by service name uses (random, round-robin,
// consistent hashing that every node computes alike, nearest), and, beside
// them, implementations of core.Discovery.
package discovery
