// Package fedclaimspb is the fedclaims wire protocol: the gRPC services Federation (called
// by sites) and Admin (called by the coordinator), generated from fedclaims.proto by
// `make proto`, and the small pieces every client and server of them needs: server
// and dial options for mutual TLS with the caller's certificate identity in the call
// context, the envelope check that binds each message to that identity, chunked blob
// transfer, and signed share keys.
//
// See fedclaims.proto for the protocol itself.
//
// The package was called proto until it collided with protobuf's own; the .proto
// package stays fedclaims.v1, so gRPC method names on the wire are unchanged.
package fedclaimspb
