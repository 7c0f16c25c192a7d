package model

import "math/bits"

// DefaultTimeBuckets is the presets' TimeBuckets: bucket 15 gathers every span of
// 2^14-1 days (about 45 years) and more, so that no real claims history is capped
// short of its oldest visit.
const DefaultTimeBuckets = 16

// daysPerYear matches the tokenizer's year (365.25 days), so that a difference of
// two token ages turns back into the days between their events.
const daysPerYear = 365.25

// TimeBucket is the bucket of a span of days on the log scale that the time and
// gap embeddings use: 1+floor(log2(1+days)) for days rounded to the nearest whole
// day (so 0 days is bucket 1, 1-2 days bucket 2, 3-6 days bucket 3, 7-14 days
// bucket 4, 2^k-1 to 2^(k+1)-2 days bucket k+1), capped at buckets-1. Bucket 0 is never returned: it is kept for spans
// that are unknown or do not apply. A negative span (an event after the cutoff
// it is measured to, which only a data error gives) counts as 0 days.
func TimeBucket(days float64, buckets int) int {
	if !(days >= 0.5) { // also NaN: nothing better to say than "same day"
		return 1
	}
	if days >= 1<<62 {
		return buckets - 1
	}
	return min(bits.Len64(uint64(days+0.5)+1), buckets-1)
}

// spanBucket is TimeBucket of the days from the age earlier to the age later
// (years), or 0 when either age is unknown (negative, or NaN).
func spanBucket(later, earlier float32, buckets int) int32 {
	if !(later >= 0 && earlier >= 0) {
		return 0
	}
	return int32(TimeBucket((float64(later)-float64(earlier))*daysPerYear, buckets))
}

// timeBuckets writes each token's time-to-cutoff bucket to tb and its gap bucket to
// gb, derived from the batch as the tokenizer lays it out: column 0 ([CLS]) carries
// the age at the cutoff, every other token the age at its event, and a [SEP] closes
// each visit. Deriving them here, rather than carrying them in Batch, leaves every
// producer of batches (site agent, rounds, fine-tuning, the CUDA build) as it is.
//
// The time bucket of a token is the span from its event to the cutoff. The gap
// bucket of every token of a visit, its [SEP] included, is the span from the
// previous visit's first token to this visit's first token; the window's first
// visit has no previous visit in view and gets 0. Both spans are to within the
// hours that separate events of one day. [CLS] and [PAD] get 0 for both, and so
// does any span involving an unknown age.
func timeBuckets(b *Batch, buckets int, tb, gb []int32) {
	for s := range b.B {
		row := s * b.T
		ref := b.Ages[row]
		tb[row], gb[row] = 0, 0
		visits := 0
		start, prevStart := float32(0), float32(0)
		opening := true // the next real token opens a visit
		gap := int32(0)
		for k := row + 1; k < row+b.T; k++ {
			tok, a := b.Tokens[k], b.Ages[k]
			if tok == PAD {
				tb[k], gb[k] = 0, 0
				continue
			}
			if opening {
				visits++
				prevStart, start = start, a
				gap = 0
				if visits > 1 {
					gap = spanBucket(start, prevStart, buckets)
				}
				opening = false
			}
			tb[k] = spanBucket(ref, a, buckets)
			gb[k] = gap
			opening = tok == SEP
		}
	}
}
