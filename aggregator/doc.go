// Package aggregator is the consortium's side of fedclaims: it enrols the
// allow-listed sites, relays the secure-aggregation key setup, builds the federated
// vocabulary, announces rounds, sums the sites' encrypted updates as their chunks
// arrive, asks t contributors for decryption shares of that one sum, combines them
// and steps the server optimizer (FedAvg or FedAdam).
//
// The rules live in two pure state machines in the manner of etcd's raft package:
// Machine for rounds and SetupMachine for enrolment, key setup and vocabulary. The
// I/O layer Steps messages (uploads, the sealed sum, shares, deadlines, admin
// commands) into them and acts on what Ready returns; a handler asks the same rules
// (AdmitUpload, AdmitShare, AdmitStep) before it reads a body. They hold no network,
// clock or ciphertext, so every rule (min_sites >= t + 1, who contributed, who
// decrypts and who is passed over after withholding, one share per site per round,
// round ids never reused, every site in every setup step) is tested without either.
//
// Server is that I/O layer: the gRPC Federation and Admin services of package proto
// over mutual TLS, where a caller is its certificate and every message's envelope is
// checked against it. One goroutine, the loop, owns the machines, the global model
// and the per-site assignment queues; handlers hand it closures, and stream
// ciphertext chunks straight into the round's secureagg.Aggregate outside it, so the
// aggregator's memory is one model's ciphertexts whatever the number of sites.
//
// Every action is written to the hash-chained audit log before it is performed, and
// an action whose entry cannot be written is refused (fail closed). After each round
// the global model, the optimizer state, the round state and the history are
// checkpointed atomically in the state directory; a restarted aggregator resumes from
// there with a fresh round id, the sites reconnecting on their own.
//
// Determinism: the initial model and every site's local-training seed derive from
// the configured seed and the model version (not the round id, which a restart
// advances). The encrypted path adds CKKS noise, so the same seeds give the same
// one-round model within the secure-aggregation error bound
// (secureagg.Parameters.ErrorStdDev), not bit for bit; over several rounds local
// training carries that noise forward and can enlarge it in a few parameters
// (`make faults` measures by how much).
package aggregator
