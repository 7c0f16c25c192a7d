// Package aggregator is the consortium's side of fedclaims: it announces rounds,
// sums the sites' encrypted updates as their chunks arrive, asks the contributors for
// decryption shares of that one sum, combines any t of them and steps the server
// optimizer.
//
// The round rules live in Machine, a pure state machine in the manner of etcd's raft
// package: the I/O layer Steps messages (uploads, shares, deadlines, commands) into it
// and acts on what Ready returns. Machine holds no network, clock or ciphertext, so
// every rule (min_sites, the threshold, one share per site per round, round ids never
// reused) is tested without either.
package aggregator
