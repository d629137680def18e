// Package sdktest is the conformance kit for astranet discovery and routing
// implementations, in-process or plugin.
//
// Plugin authors run Discovery (and Routing) from their own tests against a
// constructor of their implementation:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Discovery(t, func() core.Discovery { return mydiscovery.New() })
//	}
//
// The suite starts each implementation on a fake Mesh, checks what it
// publishes after Register and Deregister, its Watch stream through the SDK's
// gRPC adapters (snapshot first, then changes), that bad input does not make
// it panic, and that Close returns promptly and ends publishing. OverGRPC
// puts an implementation behind a real gRPC server on 127.0.0.1, as a host
// would see it through a plugin, without a process.
package sdktest
