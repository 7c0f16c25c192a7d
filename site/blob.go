package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// envelope is what every message from this site carries.
func (a *Agent) envelope(round uint64) *fedclaimspb.Envelope {
	return &fedclaimspb.Envelope{FederationId: a.federationID(), RoundId: round, SiteId: a.cfg.SiteID}
}

// checkEnvelope checks a message from the aggregator: this federation, this site and
// the round the site is working on.
func (a *Agent) checkEnvelope(env *fedclaimspb.Envelope, round uint64) error {
	switch {
	case env == nil:
		return errors.New("message without an envelope")
	case env.SiteId != a.cfg.SiteID:
		return fmt.Errorf("envelope for site %q, this is site %q", env.SiteId, a.cfg.SiteID)
	case env.FederationId != a.federationID():
		return fmt.Errorf("envelope of federation %q, this site is in %q", env.FederationId, a.federationID())
	case env.RoundId != round:
		return fmt.Errorf("envelope of round %d, expected round %d", env.RoundId, round)
	}
	return nil
}

// blob is a downloaded blob: its chunks as they arrived, its size and SHA-256.
type blob struct {
	chunks [][]byte
	size   uint64
	sum    []byte
}

func (b *blob) bytes() []byte { return bytes.Join(b.chunks, nil) }

// download fetches a blob of kind (from dealer from, for a Shamir share) for round.
// want, when not nil, is the reference the assignment gave: the aggregator's header
// must agree with it, and the chunks must add up to its size and hash.
func (a *Agent) download(ctx context.Context, round uint64, kind fedclaimspb.BlobKind, from string, want *fedclaimspb.BlobRef) (*blob, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Download(ctx, &fedclaimspb.DownloadRequest{Envelope: a.envelope(round), Kind: kind, FromSiteId: from})
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", kind, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", kind, err)
	}
	if err := a.checkEnvelope(first.Envelope, round); err != nil {
		return nil, fmt.Errorf("download %s: %w", kind, err)
	}
	h := first.GetHeader()
	switch {
	case h == nil:
		return nil, fmt.Errorf("download %s: first message is not a header", kind)
	case h.Kind != kind:
		return nil, fmt.Errorf("download %s: the aggregator sent a %s", kind, h.Kind)
	case want != nil && want.Size != 0 && h.Size != want.Size:
		return nil, fmt.Errorf("download %s: %d bytes announced, the assignment said %d", kind, h.Size, want.Size)
	case want != nil && len(want.Sha256) != 0 && !bytes.Equal(h.Sha256, want.Sha256):
		return nil, fmt.Errorf("download %s: SHA-256 %x announced, the assignment said %x", kind, h.Sha256, want.Sha256)
	}
	sum := h.Sha256
	if want != nil && len(want.Sha256) != 0 {
		sum = want.Sha256
	}
	if len(sum) == 0 {
		return nil, fmt.Errorf("download %s: no SHA-256 to check the blob against", kind)
	}
	r := fedclaimspb.NewBlobReader(func() (*fedclaimspb.Chunk, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if err := a.checkEnvelope(m.Envelope, round); err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	}, h.Size, sum)
	var b blob
	for {
		c, err := r.NextChunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", kind, err)
		}
		b.chunks = append(b.chunks, c.Data)
	}
	b.size, b.sum = r.Size(), r.Sum()
	return &b, nil
}

// upload sends msgs as one blob of kind, one message per chunk when perChunk is set
// (secureagg messages, which the aggregator decodes chunk by chunk), else as bytes cut
// into chunks. It checks that the aggregator received what was sent.
func (a *Agent) upload(ctx context.Context, round, seq uint64, hdr *fedclaimspb.UploadHeader, msgs [][]byte, perChunk bool) (uint64, []byte, error) {
	h := sha256.New()
	var size uint64
	for _, m := range msgs {
		h.Write(m)
		size += uint64(len(m))
	}
	hdr.Size, hdr.Sha256, hdr.AssignmentSeq = size, h.Sum(nil), seq
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Upload(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("upload %s: %w", hdr.Kind, err)
	}
	env := a.envelope(round)
	if err := stream.Send(&fedclaimspb.UploadRequest{Envelope: env, Part: &fedclaimspb.UploadRequest_Header{Header: hdr}}); err != nil {
		return 0, nil, fmt.Errorf("upload %s: %w", hdr.Kind, uploadErr(stream, err))
	}
	send := func(c *fedclaimspb.Chunk) error {
		return stream.Send(&fedclaimspb.UploadRequest{Envelope: env, Part: &fedclaimspb.UploadRequest_Chunk{Chunk: c}})
	}
	if perChunk {
		_, _, err = fedclaimspb.SendMessages(msgs, send)
	} else {
		_, _, err = fedclaimspb.SendBlob(bytes.NewReader(bytes.Join(msgs, nil)), send)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("upload %s: %w", hdr.Kind, uploadErr(stream, err))
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, nil, fmt.Errorf("upload %s: %w", hdr.Kind, err)
	}
	if err := a.checkEnvelope(resp.Envelope, round); err != nil {
		return 0, nil, fmt.Errorf("upload %s: response: %w", hdr.Kind, err)
	}
	if resp.Size != size || !bytes.Equal(resp.Sha256, hdr.Sha256) {
		return 0, nil, fmt.Errorf("upload %s: the aggregator received %d bytes with SHA-256 %x, %d bytes with %x were sent",
			hdr.Kind, resp.Size, resp.Sha256, size, hdr.Sha256)
	}
	return size, hdr.Sha256, nil
}

// uploadErr returns the server's reason when a send failed because the server ended
// the stream (Send reports only io.EOF then).
func uploadErr(stream fedclaimspb.Federation_UploadClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.CloseAndRecv(); rerr != nil {
			return rerr
		}
	}
	return err
}
