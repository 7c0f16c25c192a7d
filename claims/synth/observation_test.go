package synth

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
)

// eventsFingerprint hashes the ids, sexes, births and events of the first n patients
// of every hospital of a fixed configuration.
func eventsFingerprint(t *testing.T, n int) uint64 {
	g := newGen(t, Config{Hospitals: 2, Patients: n, Seed: 7})
	h := fnv.New64a()
	var b [8]byte
	put := func(v int64) {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	for hi := range 2 {
		for i := range n {
			p := g.Patient(hi, i)
			put(p.ID)
			put(int64(p.Sex))
			put(p.Birth)
			for _, e := range p.Events {
				put(e.Time)
				h.Write([]byte(e.Code))
				put(int64(math.Float32bits(e.Value)))
			}
		}
	}
	return h.Sum64()
}

// The observation end is set without a random draw of its own, so the events are
// those the generator made before it had one. The fingerprint was taken from the
// generator as it was before ObservationEnd existed.
func TestObservationEndLeavesEventsUnchanged(t *testing.T) {
	const want = 0x2b6b5b7278a3b6ce
	if got := eventsFingerprint(t, 300); got != want {
		t.Errorf("events fingerprint %#x, want %#x: the generated events changed", got, uint64(want))
	}
}

func TestObservationEnd(t *testing.T) {
	g := newGen(t, Config{Hospitals: 2, Patients: 500, Seed: 3})
	died := 0
	for hi := range 2 {
		for i := range 500 {
			p := g.Patient(hi, i)
			if !p.HasObservationEnd {
				t.Fatalf("patient %d has no observation end", p.ID)
			}
			end := p.ObservationEnd
			if end%claims.MicrosPerDay != 0 {
				t.Fatalf("patient %d: observation end %d is not a midnight", p.ID, end)
			}
			if d := claims.Day(end); d < claims.DaysFromCivil(2013, 1, 1) || d > claims.DaysFromCivil(2023, 1, 1) {
				t.Fatalf("patient %d: observation end on day %d, outside the records' 2013-2023", p.ID, d)
			}
			for _, e := range p.Events {
				if e.Time >= end {
					t.Fatalf("patient %d: event %s at %d on or after the observation end %d", p.ID, e.Code, e.Time, end)
				}
				if e.Code == claims.CodeObservationEnd {
					t.Fatalf("patient %d: the observation end is an event", p.ID)
				}
			}
			if n := len(p.Events); n > 0 && p.Events[n-1].Code == claims.CodeDeath {
				died++
			}
		}
	}
	if died == 0 {
		t.Error("no patient died: the test does not see a death before the observation end")
	}
}
