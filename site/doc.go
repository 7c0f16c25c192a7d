// Package site is a hospital's agent in a fedclaims federation. It dials out to the
// aggregator over mutual TLS with the site's certificate (a hospital opens no inbound
// port), enrols with a share key signed by that certificate, and then works through
// the assignments the aggregator streams to it: the secure-aggregation key setup
// (its secret-key share, Shamir shares sealed end to end to the other sites, the
// collective public key), its k-floored code counts towards the federated
// vocabulary, local masked-language-model training rounds whose weighted deltas
// leave the site only encrypted, at most one decryption share per round, and the
// published models. The site takes part only in a federation that secureagg.Config
// accepts (threshold 1 to N-1, min_sites at least threshold+1); it stops on any
// other configuration.
//
// Everything the agent must remember across a restart lives in its state directory,
// written atomically (temporary file, fsync, rename) and secrets 0600: the last
// assignment handled, the secureagg party and the site names it was made for, the
// transport key, the rounds it has released a decryption share for and the latest
// round's share itself (kept before the release is recorded, so that an upload
// broken mid-stream is sent again byte for byte for the same aggregate and
// decrypting set, and refused for any other), the vocabulary and the latest global
// model.
// Every action is recorded in the site's own hash-chained audit log before it is
// taken; an action whose entry cannot be written is not taken, and the agent stops.
// The entries, signed with the site certificate's key: enrol (the share key's
// SHA-256), config_change (the federation configuration received), key_setup (each
// step, the SHA-256 of each blob sent), vocabulary (the count table's floor, size
// and SHA-256, which patients were counted, training_split or, for a site with
// pretrain_only, every_patient, how many, and how many were left out; the
// vocabulary installed), round_start (the same patients field: what local
// training reads; random_cut), upload (the encrypted
// update's SHA-256 and size, local steps, mean training loss, update norm),
// decryption_share (the aggregate's and the share's SHA-256, contributors,
// decryptors; resent=true for a share sent again), model_published, control and refusal. None holds patient data, keys
// or an update.
//
// A site's secureagg party id is its position in the federation's sorted site list
// (FederationConfig.sites), as the aggregator numbers them: secureagg.Roster, on
// both sides, whatever order the list travelled in.
package site
