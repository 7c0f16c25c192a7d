package secureagg

import "fmt"

// SetupLocal runs the whole key setup in one process: a Party per site, the
// collective public key and the Shamir re-sharing with every share sealed to its recipient's transport key. Every message goes through its binary encoding, as it
// would on the wire. It is for simulations, benchmarks and tests; a real
// federation runs the same steps across machines.
func SetupLocal(cfg Config) ([]*Party, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	parties := make([]*Party, len(cfg.Sites))
	for i, s := range cfg.Sites {
		if parties[i], err = NewParty(cfg, s); err != nil {
			return nil, err
		}
	}
	g, err := NewPublicKeyGen(cfg.Params, cfg.Federation)
	if err != nil {
		return nil, err
	}
	var agg *PublicKeyShare
	for _, p := range parties {
		s, err := p.PublicKeyShare()
		if err != nil {
			return nil, err
		}
		var wire PublicKeyShare
		if err := relay(s, &wire); err != nil {
			return nil, err
		}
		if agg == nil {
			agg = &wire
			continue
		}
		if err := g.AggregateShares(agg, &wire, agg); err != nil {
			return nil, err
		}
	}
	pk, err := g.GenPublicKey(agg)
	if err != nil {
		return nil, err
	}
	for _, p := range parties {
		var wire PublicKey
		if err := relay(pk, &wire); err != nil {
			return nil, err
		}
		if err := p.SetPublicKey(&wire); err != nil {
			return nil, err
		}
	}
	// Unreachable: Config.normalize refuses a threshold equal to the number of sites.
	if cfg.Threshold == len(cfg.Sites) {
		return parties, nil
	}
	keys := make([]*TransportKey, len(parties))
	for j := range keys {
		if keys[j], err = NewTransportKey(); err != nil {
			return nil, err
		}
	}
	inbox := make([][]*ShamirShare, len(parties))
	for _, p := range parties {
		shares, err := p.ShamirShares()
		if err != nil {
			return nil, err
		}
		for j, s := range shares {
			sealed, err := s.Seal(keys[j].PublicKey())
			if err != nil {
				return nil, err
			}
			var wire SealedShamirShare
			if err := relay(sealed, &wire); err != nil {
				return nil, err
			}
			opened, err := wire.Open(keys[j])
			if err != nil {
				return nil, err
			}
			inbox[j] = append(inbox[j], opened)
		}
	}
	for j, p := range parties {
		if err := p.SetShamirShares(inbox[j]); err != nil {
			return nil, err
		}
	}
	return parties, nil
}

// relay copies a message through its binary encoding.
func relay(from interface{ MarshalBinary() ([]byte, error) }, to interface{ UnmarshalBinary([]byte) error }) error {
	b, err := from.MarshalBinary()
	if err != nil {
		return fmt.Errorf("secureagg: encoding: %w", err)
	}
	return to.UnmarshalBinary(b)
}
