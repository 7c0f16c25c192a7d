package audit

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Refusals is the type of the entry that reports refusals a RefusalLimiter kept out
// of the log one by one (RefusalSummary.Fields).
const Refusals = "refusal_summary"

// Defaults of RefusalLimits.
//
// A minute is short enough that a summary follows the refusals it counts while they
// are still news, and long enough to turn a peer that retries in a tight loop (about
// 690 refused calls a second per connection were measured, each a 536-byte signed,
// fsynced entry: 32 GB a day) into a handful of entries a minute. Ten refusals a
// minute let an honest site's mistakes through untouched (a few stale-round messages
// after a restart, a reconnect storm) while capping what one peer can write: at most
// Burst refusal entries and one summary per reason per interval, about 15 KB a minute
// and 20 MB a day per peer at the defaults, instead of 32 GB. 1024 peers and 16 reasons
// a peer bound the limiter's memory to a few MB whatever the peers send.
const (
	DefaultRefusalInterval   = time.Minute
	DefaultRefusalBurst      = 10
	DefaultRefusalMaxPeers   = 1024
	DefaultRefusalMaxReasons = 16
)

// Keys a RefusalLimiter substitutes when it runs out of room.
const (
	// OtherReason counts a peer's refusals beyond its MaxReasons distinct reasons.
	OtherReason = "other"
	// EvictedPeers is the Peer of the summary that counts the unreported refusals of
	// peers evicted to make room for new ones.
	EvictedPeers = "*"
)

// RefusalLimits configure a RefusalLimiter; zero fields take the defaults above.
type RefusalLimits struct {
	// Interval is the window over which refusals are counted and a peer's burst
	// renews; a window starts at a peer's first refusal.
	Interval time.Duration
	// Burst is the number of refusals per peer per interval that are answered as
	// usual; later ones in the interval are throttled.
	Burst int
	// MaxPeers bounds the peers tracked; the one refused least recently is evicted.
	MaxPeers int
	// MaxReasons bounds the reasons tracked per peer, OtherReason included: the
	// first MaxReasons-1 distinct reasons are tracked as themselves, later ones as
	// OtherReason.
	MaxReasons int
}

// RefusalDecision is what to do with one refusal.
type RefusalDecision struct {
	// Record: audit this refusal as an entry of its own. It is the first of its peer
	// and reason in the interval; the rest are counted for Flush.
	Record bool
	// Throttled: the peer is past its burst for this interval. Answer the call with
	// codes.ResourceExhausted and write nothing; Flush counts it.
	Throttled bool
}

// RefusalSummary counts one peer's refusals, for one reason, that were not audited one
// by one since the last Flush.
type RefusalSummary struct {
	Peer, Reason string
	// Count is the number of refusals left out of the log, Throttled included.
	Count int
	// Throttled is how many of Count were answered ResourceExhausted.
	Throttled int
	// First and Last are the times of the first and the last of them.
	First, Last time.Time
}

// Fields returns s as the fields of a Refusals entry, each cut to MaxFieldLen.
func (s RefusalSummary) Fields() map[string]string {
	return map[string]string{
		"peer":      cut(s.Peer),
		"reason":    cut(s.Reason),
		"count":     strconv.Itoa(s.Count),
		"throttled": strconv.Itoa(s.Throttled),
		"first":     s.First.UTC().Format(time.RFC3339Nano),
		"last":      s.Last.UTC().Format(time.RFC3339Nano),
	}
}

func cut(s string) string {
	if len(s) > MaxFieldLen {
		return s[:MaxFieldLen]
	}
	return s
}

// RefusalLimiter decides which refusals reach the audit log: per peer and reason, the
// first in each interval is recorded and the rest counted, to be audited as one
// Refusals entry per peer and reason at the next Flush; a peer refused more than
// Burst times in an interval is throttled for the rest of it. Memory is bounded by
// MaxPeers × MaxReasons. It reads no clock: every call is given the time.
//
// Peers and reasons are keys, not messages: a peer is a certificate identity (or an
// address for a caller without one) and a reason a short class such as a method and a
// status code, so that a peer cannot mint a new reason per call. The first refusal's
// full message goes into its own entry.
//
// RefusalLimiter is safe for concurrent use.
type RefusalLimiter struct {
	lim RefusalLimits

	mu      sync.Mutex
	peers   map[string]*refusalPeer
	evicted RefusalSummary // refusals of evicted peers not yet flushed
}

type refusalPeer struct {
	start   time.Time // the current window's start
	last    time.Time // the latest refusal, for eviction
	count   int       // refusals in the current window
	reasons map[string]*refusalReason
}

type refusalReason struct {
	recorded bool // one refusal for this reason was recorded in the current window
	pending  RefusalSummary
}

// NewRefusalLimiter returns a limiter with lim, its zero fields set to the defaults.
func NewRefusalLimiter(lim RefusalLimits) *RefusalLimiter {
	if lim.Interval <= 0 {
		lim.Interval = DefaultRefusalInterval
	}
	if lim.Burst <= 0 {
		lim.Burst = DefaultRefusalBurst
	}
	if lim.MaxPeers <= 0 {
		lim.MaxPeers = DefaultRefusalMaxPeers
	}
	if lim.MaxReasons <= 0 {
		lim.MaxReasons = DefaultRefusalMaxReasons
	}
	return &RefusalLimiter{lim: lim, peers: map[string]*refusalPeer{}, evicted: RefusalSummary{Peer: EvictedPeers, Reason: "peers evicted before their refusals were reported"}}
}

// Limits returns the limits in force, defaults filled in.
func (l *RefusalLimiter) Limits() RefusalLimits { return l.lim }

// Allow decides what to do with a refusal of peer for reason at now.
func (l *RefusalLimiter) Allow(now time.Time, peer, reason string) RefusalDecision {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[peer]
	if p == nil {
		if len(l.peers) >= l.lim.MaxPeers {
			l.evictOldest()
		}
		p = &refusalPeer{start: now, reasons: map[string]*refusalReason{}}
		l.peers[peer] = p
	}
	// A clock stepped back also starts a new window, so that a peer is never held
	// throttled until the clock catches up.
	if now.Sub(p.start) >= l.lim.Interval || now.Before(p.start) {
		p.start, p.count = now, 0
		for _, r := range p.reasons {
			r.recorded = false
		}
	}
	p.last = now
	p.count++
	r := p.reasons[reason]
	if r == nil {
		// One place is kept for OtherReason.
		if len(p.reasons) >= l.lim.MaxReasons-1 {
			reason = OtherReason
			r = p.reasons[reason]
		}
		if r == nil {
			r = &refusalReason{pending: RefusalSummary{Peer: peer, Reason: reason}}
			p.reasons[reason] = r
		}
	}
	if p.count > l.lim.Burst {
		add(&r.pending, now, 1, 1)
		return RefusalDecision{Throttled: true}
	}
	if !r.recorded {
		r.recorded = true
		return RefusalDecision{Record: true}
	}
	add(&r.pending, now, 1, 0)
	return RefusalDecision{}
}

// add counts n refusals (throttled of them throttled) at t into s.
func add(s *RefusalSummary, t time.Time, n, throttled int) {
	if s.Count == 0 || t.Before(s.First) {
		s.First = t
	}
	if s.Count == 0 || t.After(s.Last) {
		s.Last = t
	}
	s.Count += n
	s.Throttled += throttled
}

// evictOldest drops the peer refused least recently, folding its unreported counts
// into the evicted summary.
func (l *RefusalLimiter) evictOldest() {
	var oldest string
	var at time.Time
	for k, p := range l.peers {
		if oldest == "" || p.last.Before(at) || p.last.Equal(at) && k < oldest {
			oldest, at = k, p.last
		}
	}
	for _, r := range l.peers[oldest].reasons {
		if r.pending.Count > 0 {
			add(&l.evicted, r.pending.First, r.pending.Count, r.pending.Throttled)
			add(&l.evicted, r.pending.Last, 0, 0)
		}
	}
	delete(l.peers, oldest)
}

// Flush returns the counts of refusals left out of the log since the last Flush, one
// summary per peer and reason, sorted by peer and reason, and forgets peers whose
// interval ended. Audit each as a Refusals entry (RefusalSummary.Fields). Call it
// every Interval, and once more before closing the log.
func (l *RefusalLimiter) Flush(now time.Time) []RefusalSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []RefusalSummary
	if l.evicted.Count > 0 {
		out = append(out, l.evicted)
		l.evicted = RefusalSummary{Peer: l.evicted.Peer, Reason: l.evicted.Reason}
	}
	for _, k := range slices.Sorted(maps.Keys(l.peers)) {
		p := l.peers[k]
		for _, rk := range slices.Sorted(maps.Keys(p.reasons)) {
			r := p.reasons[rk]
			if r.pending.Count > 0 {
				out = append(out, r.pending)
				r.pending = RefusalSummary{Peer: k, Reason: rk}
			}
		}
		if now.Sub(p.start) >= l.lim.Interval || now.Before(p.start) {
			delete(l.peers, k)
		}
	}
	return out
}

// Tracked returns the number of peers the limiter holds state for.
func (l *RefusalLimiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}
