package sdk

// Regenerate the gRPC code of the plugin contract (run in sdk/ with protoc,
// protoc-gen-go and protoc-gen-go-grpc on PATH; docs/internals.md says which
// versions):
//
//go:generate protoc --proto_path=proto --go_out=proto --go_opt=paths=source_relative --go-grpc_out=proto --go-grpc_opt=paths=source_relative astranet/plugin/v1/types.proto astranet/plugin/v1/discovery.proto astranet/plugin/v1/routing.proto astranet/plugin/v1/host.proto
