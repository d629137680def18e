// Package examples holds small runnable programs, one main package per
// folder, each showing one use of astranet through its face (the root
// package):
//
//	echo    two nodes over TCP loopback, an echo service dialled by name
//	pipe    an in-memory network: a hub and three spokes on the pipe transport
//	http    net/http over astranet streams: http.Serve on a Bind listener
//	tls     links secured with mutual TLS, certificates made in memory
//	plugin  discovery in a plugin process (./plugin), with package core and
//	        package plugins rather than the face
//
// Run one with "go run ./examples/echo" from the repository root. The test in
// this folder builds and runs the first four; examples/plugin has its own.
package examples
