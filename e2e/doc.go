// Package e2e holds fedclaims' end-to-end tests: whole federations over real gRPC
// with real mutual TLS and real CKKS ciphertexts on loopback, and the checks of the
// deployment files (docker-compose.yml, the Dockerfile and the configurations they
// mount). It has no code of its own besides the tests.
package e2e
