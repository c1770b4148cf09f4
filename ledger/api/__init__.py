"""gRPC transport: servicers, interceptors, proto <-> command conversion, errors -> status."""
