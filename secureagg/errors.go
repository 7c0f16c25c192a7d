package secureagg

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is. Every error the package returns wraps one of
// them (or a lattigo or context error) with the message's header in its text.
var (
	// ErrMalformed: a message does not decode (bad version, truncated, a
	// coefficient not reduced modulo q).
	ErrMalformed = errors.New("malformed message")
	// ErrParams: a message was made under another parameter set.
	ErrParams = errors.New("parameter set mismatch")
	// ErrFederation: a message belongs to another federation.
	ErrFederation = errors.New("federation mismatch")
	// ErrRound: a message belongs to another round.
	ErrRound = errors.New("round mismatch")
	// ErrDuplicate: a chunk or share was already counted; it is not added twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrNotInSet: a share comes from a site outside the decrypting set, or was
	// computed for another decrypting set.
	ErrNotInSet = errors.New("site outside the decrypting set")
	// ErrTooFewShares: fewer than the threshold of sites sent complete shares.
	ErrTooFewShares = errors.New("too few decryption shares")
	// ErrTooFewSites: a sum holds fewer contributions than Config.MinSites.
	ErrTooFewSites = errors.New("too few contributing sites")
	// ErrRange: a value outside what the parameters can carry without wrapping.
	ErrRange = errors.New("value out of range")
	// ErrShape: a chunk index or chunk count that does not fit the model.
	ErrShape = errors.New("shape mismatch")
	// ErrTooManySites: more sites than MaxSites contributed to one aggregate.
	ErrTooManySites = errors.New("too many sites")
	// ErrSealed: the aggregate no longer accepts chunks.
	ErrSealed = errors.New("aggregate sealed")
	// ErrSetup: the key setup is incomplete or inconsistent.
	ErrSetup = errors.New("key setup")
)

// MessageError reports a refused message with the header that identifies it.
type MessageError struct {
	Kind   string // message type, e.g. "chunk"
	Header Header
	Err    error
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("secureagg: %s %s: %v", e.Kind, e.Header, e.Err)
}

func (e *MessageError) Unwrap() error { return e.Err }

func refuse(kind string, h Header, err error) error {
	return &MessageError{Kind: kind, Header: h, Err: err}
}
