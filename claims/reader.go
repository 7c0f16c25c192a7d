package claims

import "context"

// Reader yields one patient at a time, so that memory grows with the patient held,
// not with the dataset. Next returns io.EOF after the last patient. The returned
// Patient is owned by the caller.
type Reader interface {
	Next(ctx context.Context) (*Patient, error)
	Close() error
}
