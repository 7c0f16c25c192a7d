// Package secureagg aggregates the sites' model updates under threshold
// multiparty CKKS (lattigo v5: mhe, he/hefloat, core/rlwe), so that neither the
// aggregator nor any coalition of fewer than t sites reads one site's update;
// only the weighted mean of all contributions is ever decrypted.
//
// It is library code without network: every message is a type with
// MarshalBinary and UnmarshalBinary, starting with a version byte and a header
// that binds it to (parameter set, federation, round, site, chunk index).
//
// A federation has N ≥ 2 sites and a threshold t with 1 ≤ t ≤ N−1 (zero
// means N−1); every sum a site helps decrypt must hold at least
// Config.MinSites ≥ t+1 contributions (zero means t+1). Config refuses
// anything less: the t decrypting sites see the decrypted sum, so with only t
// contributors the aggregator and t−1 colluding decryptors would subtract
// their own updates and read the remaining site's exactly. t = 1 is allowed
// but lets the aggregator with any one site decrypt every update: tests and
// simulations only.
//
// Setup, once per federation:
//
//	cfg := secureagg.Config{Params: params, Federation: "fed", Sites: ids, Threshold: t} // MinSites: t+1
//	party, _ := secureagg.NewParty(cfg, id)          // at each site: secret-key share
//	share, _ := party.PublicKeyShare()              // site -> aggregator
//	g, _ := secureagg.NewPublicKeyGen(params, "fed") // aggregator: AggregateShares, GenPublicKey
//	party.SetPublicKey(pk)                          // aggregator -> every site
//	tk, _ := secureagg.NewTransportKey()            // each site publishes tk.PublicKey()
//	shamir, _ := party.ShamirShares()               // one per site, in Config.Sites order
//	sealed, _ := shamir[j].Seal(recipientPublicKey) // relayed by the aggregator, opened with sealed.Open(tk)
//	party.SetShamirShares(received)                 // one from every site
//	state, _ := party.MarshalBinary()               // secret; persist it encrypted
//
// Each round r:
//
//	chunks, _ := party.Encrypt(ctx, r, delta, sampleCount) // site -> aggregator
//	agg, _ := secureagg.NewAggregate(cfg, r, len(delta))   // aggregator
//	agg.AddBinary(wireBytes)                               // as chunks arrive, in place (or agg.Add)
//	sums := agg.Seal()                                     // after the deadline, from >= MinSites sites; aggregator -> decrypting set
//	shares, _ := party.DecryptShare(ctx, set, sums)        // each of exactly t sites -> aggregator
//	dec, _ := secureagg.NewDecryption(agg, set)
//	dec.AddBinary(wireBytes)                               // or dec.Add
//	res, _ := dec.Result(ctx)                              // res.Mean, res.Count
//
// Values are fixed-point coefficients (CKKS coefficient encoding) of the
// conjugate-invariant ring, at level 0 of a single 60-bit modulus: the protocol
// needs additions only. Each chunk holds N-1 weighted values and the site's
// weight, so every chunk of the sum decodes to its own weighted mean even when
// a site's upload stopped halfway.
//
// SetupLocal runs the whole setup in one process, for simulations and tests;
// Bench measures a round (fedclaims bench secureagg).
//
// Optional distributed differential privacy (DP.Apply, Accountant): each
// site clips its update and adds its share of Gaussian noise before encrypting;
// the accountant reports the (epsilon, delta) of the noise actually summed.
//
// See docs/SECURITY.md for the threat model, the parameters and their security.
package secureagg
