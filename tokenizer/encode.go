package tokenizer

import (
	"fmt"
	"math"

	"github.com/fedclaims/fedclaims/claims"
)

// NoCutoff, passed as a cutoff, encodes a patient's whole history.
const NoCutoff int64 = math.MaxInt64

// AgeUnknown is the age given to every token of a patient without a birth date, and to
// the [CLS] token of a patient with neither a cutoff nor events to date it by. Real ages
// are never negative, so the model can tell it apart.
const AgeUnknown float32 = -1

// NumSegments is the number of distinct segment ids: 0 for [CLS] and padding, then 1
// and 2 alternating from one visit to the next.
const NumSegments = 3

const microsPerYear = 365.25 * claims.MicrosPerDay

// Encoding is one patient's input to the encoder. All four slices have the same length,
// at most the Encoder's maximum length; padding is left to the batcher.
//
// The sequence is [CLS] followed by the visits in time order, each visit's distinct
// tokens in event order and then a [SEP] that closes the visit. A visit is the events
// on one calendar day (UTC). The closing [SEP] costs one token per visit; we keep it
// because the segment ids alone only tell neighbouring visits apart, and the [SEP]
// gives each visit a position the model can pool on.
type Encoding struct {
	// IDs are token ids in the Vocab.
	IDs []int32
	// Segments alternate 1, 2, 1, ... per visit, counted from the first visit kept;
	// [CLS] has 0. Each [SEP] has its visit's segment.
	Segments []int32
	// Ages are the patient's age in years at each token's event; [CLS] carries the age
	// at the cutoff (at the last event encoded when there is no cutoff). AgeUnknown
	// when the birth date is not known.
	Ages []float32
	// Positions are 0, 1, 2, ... along the sequence.
	Positions []int32
}

// Len returns the number of tokens.
func (e *Encoding) Len() int { return len(e.IDs) }

func (e *Encoding) reset() {
	e.IDs, e.Segments, e.Ages, e.Positions = e.IDs[:0], e.Segments[:0], e.Ages[:0], e.Positions[:0]
}

func (e *Encoding) push(id, seg int32, age float32) {
	e.Positions = append(e.Positions, int32(len(e.IDs)))
	e.IDs = append(e.IDs, id)
	e.Segments = append(e.Segments, seg)
	e.Ages = append(e.Ages, age)
}

// Encoder turns patients into Encodings. It keeps scratch buffers and a cache of code
// lookups between calls, so it is not safe for concurrent use: give each goroutine its
// own Encoder over the shared Vocab.
type Encoder struct {
	vocab  *Vocab
	maxLen int
	// cache holds the ids of codes missing from the vocabulary's index (after fallback,
	// or -1 for codes that are not tokens), so that fallback strings are built once.
	cache map[string]int32
	// seen[id] == stamp marks a token already emitted in the current visit.
	seen  []uint32
	stamp uint32
	// all is the whole history before truncation; visit numbers each of its tokens.
	all   Encoding
	visit []int32
}

// NewEncoder returns an Encoder over v that emits at most maxLen tokens, [CLS]
// included; longer histories keep their most recent tokens.
func NewEncoder(v *Vocab, maxLen int) (*Encoder, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("tokenizer: max length %d: must be at least 2 ([CLS] and one token)", maxLen)
	}
	return &Encoder{vocab: v, maxLen: maxLen, cache: make(map[string]int32), seen: make([]uint32, v.Len())}, nil
}

// MaxLen returns the longest Encoding the encoder emits.
func (e *Encoder) MaxLen() int { return e.maxLen }

// Encode returns the encoding of p's events strictly before cutoff (microseconds since
// the Unix epoch; NoCutoff for the whole history).
func (e *Encoder) Encode(p *claims.Patient, cutoff int64) *Encoding {
	dst := new(Encoding)
	e.EncodeTo(dst, p, cutoff)
	return dst
}

// EncodeTo is Encode into dst, reusing dst's slices; with a reused dst it does not
// allocate once the buffers have grown to the longest history seen.
func (e *Encoder) EncodeTo(dst *Encoding, p *claims.Patient, cutoff int64) {
	e.all.reset()
	e.visit = e.visit[:0]
	visit, day := int32(-1), int64(math.MinInt64)
	var lastAge float32 = AgeUnknown
	for i := range p.Events {
		ev := &p.Events[i]
		// Filter every event rather than stop at the first one past the cutoff: a
		// patient whose events are out of order must still not leak its future.
		if ev.Time >= cutoff {
			continue
		}
		id := e.id(ev.Code)
		if id < 0 {
			continue
		}
		if d := claims.Day(ev.Time); d != day || visit < 0 {
			if visit >= 0 {
				e.closeVisit(visit, lastAge)
			}
			visit, day = visit+1, d
			e.nextStamp()
		}
		if e.seen[id] == e.stamp {
			continue
		}
		e.seen[id] = e.stamp
		lastAge = age(p, ev.Time)
		e.all.push(id, 0, lastAge)
		e.visit = append(e.visit, visit)
	}
	if visit >= 0 {
		e.closeVisit(visit, lastAge)
	}

	clsAge := lastAge
	if cutoff != NoCutoff {
		clsAge = age(p, cutoff)
	}
	dst.reset()
	dst.push(CLS, 0, clsAge)
	start := max(0, e.all.Len()-(e.maxLen-1))
	if start > 0 && e.all.IDs[start] == SEP {
		start++ // the closing [SEP] of a visit cut away says nothing
	}
	for i := start; i < e.all.Len(); i++ {
		seg := 1 + (e.visit[i]-e.visit[start])%2
		dst.push(e.all.IDs[i], seg, e.all.Ages[i])
	}
}

func (e *Encoder) closeVisit(visit int32, age float32) {
	e.all.push(SEP, 0, age)
	e.visit = append(e.visit, visit)
}

// nextStamp starts a new visit's de-duplication set in O(1).
func (e *Encoder) nextStamp() {
	e.stamp++
	if e.stamp == 0 { // wrapped: old marks could collide with new stamps
		clear(e.seen)
		e.stamp = 1
	}
}

// id returns code's token id, or -1 for a code that does not become a token.
func (e *Encoder) id(code string) int32 {
	if id, ok := e.vocab.index[code]; ok && id >= NumSpecial {
		return id
	}
	if id, ok := e.cache[code]; ok {
		return id
	}
	id := int32(-1)
	if Tokenized(code) {
		id = e.vocab.ID(code)
	}
	e.cache[code] = id
	return id
}

func age(p *claims.Patient, t int64) float32 {
	if !p.HasBirth {
		return AgeUnknown
	}
	// An event dated before birth is a data error; clamping keeps AgeUnknown the only
	// negative age.
	return float32(max(0, float64(t-p.Birth)/microsPerYear))
}
