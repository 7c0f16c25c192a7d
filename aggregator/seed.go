package aggregator

// TrainSeed is the seed of site's local training in the round that starts from
// global model version: what the round's TrainTask carries. It is exported so that
// a check outside the federation (the end-to-end tests) can replay a site's round
// in plaintext.
func TrainSeed(seed, version uint64, site string) uint64 { return seedFor(seed, version, site) }
