package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Phase is where the federation's current round stands.
type Phase uint8

const (
	// PhaseIdle: no round is open (before the first, between rounds while paused, or
	// after a failed round that waits to be started again).
	PhaseIdle Phase = iota
	// PhaseCollecting: the round is announced and encrypted updates are accepted.
	PhaseCollecting
	// PhaseSealing: collection has ended; the I/O layer seals the sum and reports
	// whose chunks it holds (Sealed), from which the machine decides the contributors.
	PhaseSealing
	// PhaseDecrypting: the sum is closed and decryption shares are accepted from the
	// sites that contributed to it.
	PhaseDecrypting
	// PhaseApplying: t shares are in; the I/O layer combines them and steps the server
	// optimizer, then reports Applied.
	PhaseApplying
	// PhaseDone: every planned round has been applied.
	PhaseDone
)

func (p Phase) String() string {
	switch p {
	case PhaseIdle:
		return "idle"
	case PhaseCollecting:
		return "collecting"
	case PhaseSealing:
		return "sealing"
	case PhaseDecrypting:
		return "decrypting"
	case PhaseApplying:
		return "applying"
	case PhaseDone:
		return "done"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Rules fixes the federation's round rules.
type Rules struct {
	FederationID string
	// Sites is the allow-list of site ids.
	Sites []string
	// MinSites is the fewest contributions a round's sum may be decrypted from.
	MinSites int
	// Threshold is t: the number of decryption shares that suffice.
	Threshold int
	// Rounds is the number of successful rounds to run.
	Rounds int
}

func (c Rules) validate() error {
	switch {
	case c.FederationID == "":
		return errors.New("federation id is empty")
	case len(c.Sites) == 0:
		return errors.New("no sites are allow-listed")
	case c.Threshold < 1 || c.Threshold > len(c.Sites):
		return fmt.Errorf("threshold %d is outside [1, %d sites]", c.Threshold, len(c.Sites))
	case c.MinSites < c.Threshold+1:
		// The threat model allows t-1 colluding sites (t would decrypt anything).
		// A sum of exactly t updates, t-1 of them the colluders', is the last
		// site's update once they subtract their own; t+1 leaves two honest ones.
		return fmt.Errorf("min_sites %d must be at least threshold + 1 = %d: a sum of %d updates lets the aggregator and %d colluding sites recover the remaining site's update", c.MinSites, c.Threshold+1, c.MinSites, c.Threshold-1)
	case c.MinSites > len(c.Sites):
		return fmt.Errorf("min_sites %d exceeds the %d allow-listed sites", c.MinSites, len(c.Sites))
	case c.Rounds < 1:
		return fmt.Errorf("rounds %d: need at least one", c.Rounds)
	}
	seen := make(map[string]bool, len(c.Sites))
	for _, s := range c.Sites {
		if s == "" || seen[s] {
			return fmt.Errorf("site list: empty or repeated id %q", s)
		}
		seen[s] = true
	}
	return nil
}

// Msg is an input to the round state machine. The I/O layer turns network events
// and timers into these; Step never blocks and never reads a clock.
type Msg interface{ isMsg() }

// Start opens the next round (the coordinator's "start", or the I/O layer's
// automatic continuation after Applied).
type Start struct{}

// Uploaded reports that Site's encrypted update for Round arrived whole and was
// added into the round's sum. Digest is the SHA-256 of the bytes received.
type Uploaded struct {
	Site   string
	Round  uint64
	Digest [32]byte
}

// Deadline reports that Round's current phase has run out of time.
type Deadline struct{ Round uint64 }

// Share reports a decryption share of Round's sum received from Site.
type Share struct {
	Site  string
	Round uint64
}

// Sealed reports what the sealed sum of Round holds: the sites whose every chunk
// is in it (Complete) and those with only some (Partial). Chunks cannot be taken
// out of a sum, so this, not which upload streams closed in time, decides who
// contributed.
type Sealed struct {
	Round    uint64
	Complete []string
	Partial  []string
}

// Applied reports that Round's shares were combined and the global model updated.
type Applied struct{ Round uint64 }

// Failed reports that Round's shares could not be combined or applied (a share
// that does not decode, a failed checkpoint): the round aborts and its id is spent.
type Failed struct {
	Round  uint64
	Reason string
}

// Pause stops new rounds from opening; the open round, if any, runs to its end.
type Pause struct{}

// Resume lifts a Pause.
type Resume struct{}

// Stop ends the federation: the open round, if any, runs to its end and no other
// opens. Unlike Pause it cannot be lifted.
type Stop struct{}

func (Start) isMsg()    {}
func (Uploaded) isMsg() {}
func (Deadline) isMsg() {}
func (Share) isMsg()    {}
func (Applied) isMsg()  {}
func (Sealed) isMsg()   {}
func (Pause) isMsg()    {}
func (Resume) isMsg()   {}
func (Stop) isMsg()     {}
func (Failed) isMsg()   {}

// Announce tells the sites that Round is open on global model Version. The I/O layer
// persists State before it sends the announcement, so that a restarted aggregator
// never opens the same round id twice.
type Announce struct {
	Round   uint64
	Version uint64
}

// Seal asks the I/O layer to stop Round's sum taking chunks and Step a Sealed.
type Seal struct{ Round uint64 }

// ShareRequest asks exactly these Sites, t of the round's contributors, for one
// decryption share each of Round's sum. Threshold decryption fixes the decrypting
// set before the shares are made (each share carries its Lagrange coefficient for
// that set), so the machine picks it when the sum closes. Contributors is everyone
// whose update is in the sum, for the sites to check against min_sites.
type ShareRequest struct {
	Round        uint64
	Sites        []string
	Contributors []string
	// Partial are the sites with only some chunks in the sum: those chunks decode
	// into their means, but the sites are not contributors.
	Partial []string
}

// Combine tells the I/O layer to combine the shares of these Sites (the decrypting
// set) for Round and to apply the decoded average to the global model, then Step an
// Applied.
type Combine struct {
	Round uint64
	Sites []string
}

// Abort reports that Round ended without an update, and why.
type Abort struct {
	Round  uint64
	Reason string
}

// Ready is what the state machine asks the I/O layer to do after one or more Steps,
// in order: Announce, Seal, ShareRequest, Combine, Abort. A nil field means nothing
// to do.
type Ready struct {
	Announce     *Announce
	Seal         *Seal
	ShareRequest *ShareRequest
	Combine      *Combine
	Abort        *Abort
	// Done is set once, when the last planned round has been applied.
	Done bool
}

// IsEmpty reports whether rd asks for nothing.
func (rd Ready) IsEmpty() bool {
	return rd.Announce == nil && rd.Seal == nil && rd.ShareRequest == nil && rd.Combine == nil && rd.Abort == nil && !rd.Done
}

// Refused is the error Step returns for a message the protocol does not accept. The
// state is unchanged; the I/O layer audits the refusal and tells the sender.
type Refused struct {
	Site   string
	Round  uint64
	Reason string
}

func (e *Refused) Error() string {
	if e.Site == "" {
		return fmt.Sprintf("round %d: refused: %s", e.Round, e.Reason)
	}
	return fmt.Sprintf("round %d: refused message from site %q: %s", e.Round, e.Site, e.Reason)
}

// State is the part of the machine that survives a restart: the I/O layer saves it
// when a round opens and, with the global model, after each applied round. A machine
// restored from it is idle: a round that was open when the aggregator stopped is
// lost, and the next Start opens a fresh id.
type State struct {
	// Round is the id of the latest round opened (0 before the first). Round ids
	// are never reused, so a site never decrypts two sums under one id.
	Round uint64
	// Version counts applied rounds: the global model's version.
	Version uint64
	Paused  bool
	// Stopped is final: no round opens again.
	Stopped bool
	// Withheld counts, per site, the decryptions in a row it was asked for and did
	// not share in time. The decrypting set prefers sites with the lowest count, so
	// one withholding site cannot stall every round; a share resets the count.
	Withheld map[string]int `json:",omitempty"`
	// SharesReleased counts the decryption shares accepted from each site, aborted
	// rounds included: each one spends part of the flooding noise's budget
	// (SECURITY.md).
	SharesReleased map[string]uint64 `json:",omitempty"`
}

// Machine is the aggregator's round logic as a pure state machine, after etcd raft:
// Step a message in, then act on Ready and call Advance. It holds no network, no
// clock and no ciphertexts, so every rule is testable on its own.
type Machine struct {
	cfg     Rules
	allowed map[string]bool
	st      State
	phase   Phase

	contributors []string        // sites whose update is in the open round's sum, in arrival order
	partial      []string        // sites with only some chunks in the sealed sum
	contributed  map[string]bool // the same, as a set
	decryptors   map[string]bool // the decrypting set, fixed when the sum closes
	shares       map[string]bool // sites whose share of the open round was accepted
	digests      map[string][32]byte

	ready Ready
}

// New returns a machine at st (the zero State for a new federation).
func NewMachine(cfg Rules, st State) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("round rules: %w", err)
	}
	st.Withheld, st.SharesReleased = maps.Clone(st.Withheld), maps.Clone(st.SharesReleased)
	m := &Machine{cfg: cfg, st: st, allowed: make(map[string]bool, len(cfg.Sites))}
	for _, s := range cfg.Sites {
		m.allowed[s] = true
	}
	if st.Version >= uint64(cfg.Rounds) {
		m.phase = PhaseDone
	}
	return m, nil
}

// State returns what must be persisted to resume.
func (m *Machine) State() State {
	st := m.st
	st.Withheld, st.SharesReleased = maps.Clone(st.Withheld), maps.Clone(st.SharesReleased)
	return st
}

// Phase returns where the open round stands.
func (m *Machine) Phase() Phase { return m.phase }

// Contributors returns the sites whose updates are in the open round's sum.
func (m *Machine) Contributors() []string { return slices.Clone(m.contributors) }

// Ready returns what the I/O layer must do now.
func (m *Machine) Ready() Ready { return m.ready }

// Advance acknowledges that the last Ready was acted on.
func (m *Machine) Advance() { m.ready = Ready{} }

// Step applies one message. A *Refused error leaves the state unchanged.
func (m *Machine) Step(msg Msg) error {
	switch msg := msg.(type) {
	case Start:
		return m.start()
	case Pause:
		m.st.Paused = true
		return nil
	case Resume:
		if m.st.Stopped {
			return &Refused{Round: m.st.Round, Reason: "the federation is stopped"}
		}
		m.st.Paused = false
		return nil
	case Stop:
		m.st.Stopped = true
		return nil
	case Uploaded:
		return m.uploaded(msg)
	case Deadline:
		return m.deadline(msg)
	case Share:
		return m.share(msg)
	case Applied:
		return m.applied(msg)
	case Sealed:
		return m.sealed(msg)
	case Failed:
		if msg.Round != m.st.Round || m.phase != PhaseApplying {
			return &Refused{Round: msg.Round, Reason: fmt.Sprintf("round %d is not being applied (open: %d, %s)", msg.Round, m.st.Round, m.phase)}
		}
		m.abort(msg.Reason)
		return nil
	}
	return fmt.Errorf("aggregator: unknown message %T", msg)
}

func (m *Machine) start() error {
	switch {
	case m.phase == PhaseDone:
		return &Refused{Round: m.st.Round, Reason: "all planned rounds are done"}
	case m.st.Stopped:
		return &Refused{Round: m.st.Round, Reason: "the federation is stopped"}
	case m.phase != PhaseIdle:
		return &Refused{Round: m.st.Round, Reason: "a round is already open (" + m.phase.String() + ")"}
	case m.st.Paused:
		return &Refused{Round: m.st.Round, Reason: "the federation is paused"}
	}
	m.st.Round++
	m.phase = PhaseCollecting
	m.contributors = m.contributors[:0]
	m.partial = nil
	m.contributed = make(map[string]bool)
	m.decryptors = nil
	m.shares = make(map[string]bool)
	m.digests = make(map[string][32]byte)
	m.ready.Announce = &Announce{Round: m.st.Round, Version: m.st.Version}
	return nil
}

func (m *Machine) check(site string, round uint64) error {
	if !m.allowed[site] {
		return &Refused{Site: site, Round: round, Reason: "site is not allow-listed"}
	}
	if round != m.st.Round || m.phase == PhaseIdle || m.phase == PhaseDone {
		return &Refused{Site: site, Round: round, Reason: fmt.Sprintf("round %d is not open (open: %d, %s)", round, m.st.Round, m.phase)}
	}
	return nil
}

// AdmitUpload says whether site may begin uploading an update for round: the
// question a handler asks before it adds a single chunk to the sum.
func (m *Machine) AdmitUpload(site string, round uint64) error {
	if err := m.check(site, round); err != nil {
		return err
	}
	if m.phase != PhaseCollecting {
		return &Refused{Site: site, Round: round, Reason: "the sum is closed (" + m.phase.String() + ")"}
	}
	if m.contributed[site] {
		return &Refused{Site: site, Round: round, Reason: "site already contributed to this round"}
	}
	return nil
}

// HasShared reports whether site's share of round was accepted: a second upload of
// the same share (a retry whose first answer was lost) is then answered, not
// refused, as long as the decryption holds identical bytes.
func (m *Machine) HasShared(site string, round uint64) bool {
	return round == m.st.Round && m.shares[site]
}

// AdmitShare says whether site may send a decryption share for round.
func (m *Machine) AdmitShare(site string, round uint64) error {
	if err := m.check(site, round); err != nil {
		return err
	}
	if m.phase != PhaseDecrypting {
		return &Refused{Site: site, Round: round, Reason: "no decryption is under way (" + m.phase.String() + ")"}
	}
	if !m.decryptors[site] {
		return &Refused{Site: site, Round: round, Reason: "site is not in this round's decrypting set"}
	}
	if m.shares[site] {
		return &Refused{Site: site, Round: round, Reason: "site already sent its share"}
	}
	return nil
}

func (m *Machine) uploaded(u Uploaded) error {
	// An upload whose stream ends after the seal is accepted, not refused, when its
	// every chunk made it into the sum.
	if m.phase != PhaseCollecting && m.check(u.Site, u.Round) == nil {
		if m.contributed[u.Site] {
			return nil // sealed with every chunk in: counted at the seal
		}
		if slices.Contains(m.partial, u.Site) {
			return &Refused{Site: u.Site, Round: u.Round, Reason: "the sum was sealed with only part of this site's update"}
		}
	}
	if err := m.AdmitUpload(u.Site, u.Round); err != nil {
		return err
	}
	m.contributed[u.Site] = true
	m.contributors = append(m.contributors, u.Site)
	m.digests[u.Site] = u.Digest
	if len(m.contributors) == len(m.cfg.Sites) {
		// Everyone is in: waiting for the deadline would only add latency.
		m.seal()
	}
	return nil
}

// seal ends collection; the decision on contributors waits for Sealed.
func (m *Machine) seal() {
	m.phase = PhaseSealing
	m.ready.Seal = &Seal{Round: m.st.Round}
}

// sealed decides the contributors from what the sealed sum holds and picks the
// decrypting set.
func (m *Machine) sealed(sl Sealed) error {
	if sl.Round != m.st.Round || m.phase != PhaseSealing {
		return &Refused{Round: sl.Round, Reason: fmt.Sprintf("round %d is not being sealed (open: %d, %s)", sl.Round, m.st.Round, m.phase)}
	}
	for _, s := range append(slices.Clone(sl.Complete), sl.Partial...) {
		if !m.allowed[s] {
			return fmt.Errorf("aggregator: sealed sum of round %d holds chunks of %q, not allow-listed", sl.Round, s)
		}
	}
	// Every chunk of a complete site is in the sum whether or not its stream has
	// closed: it contributes. Uploaded sites are complete by construction.
	for _, s := range slices.Sorted(slices.Values(sl.Complete)) {
		if !m.contributed[s] {
			m.contributed[s] = true
			m.contributors = append(m.contributors, s)
		}
	}
	m.partial = slices.Sorted(slices.Values(sl.Partial))
	if len(m.contributors) < m.cfg.MinSites {
		m.abort(fmt.Sprintf("%d contributions at the deadline, min_sites is %d", len(m.contributors), m.cfg.MinSites))
		return nil
	}
	m.phase = PhaseDecrypting
	set := m.decryptingSet()
	m.decryptors = make(map[string]bool, len(set))
	for _, s := range set {
		m.decryptors[s] = true
	}
	m.ready.ShareRequest = &ShareRequest{Round: m.st.Round, Sites: set, Contributors: slices.Clone(m.contributors), Partial: slices.Clone(m.partial)}
	return nil
}

// decryptingSet picks t contributors: those that withheld fewest shares in a row
// first, then by site id, so the choice does not depend on arrival order and a
// site that failed to share is passed over while others can decrypt.
func (m *Machine) decryptingSet() []string {
	cand := slices.Clone(m.contributors)
	slices.SortFunc(cand, func(a, b string) int {
		if d := m.st.Withheld[a] - m.st.Withheld[b]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	set := cand[:m.cfg.Threshold]
	slices.Sort(set)
	return set
}

func (m *Machine) deadline(d Deadline) error {
	if d.Round != m.st.Round {
		return nil // a stale timer for a round already ended
	}
	switch m.phase {
	case PhaseCollecting:
		m.seal()
	case PhaseDecrypting:
		var missing []string
		for _, s := range slices.Sorted(maps.Keys(m.decryptors)) {
			if !m.shares[s] {
				missing = append(missing, s)
				if m.st.Withheld == nil {
					m.st.Withheld = map[string]int{}
				}
				m.st.Withheld[s]++
			}
		}
		m.abort(fmt.Sprintf("%d decryption shares at the deadline, threshold is %d; withheld by %s", len(m.shares), m.cfg.Threshold, strings.Join(missing, ",")))
	}
	return nil
}

func (m *Machine) abort(reason string) {
	m.ready.Abort = &Abort{Round: m.st.Round, Reason: reason}
	m.phase = PhaseIdle
}

func (m *Machine) share(s Share) error {
	if err := m.AdmitShare(s.Site, s.Round); err != nil {
		return err
	}
	m.shares[s.Site] = true
	if m.st.SharesReleased == nil {
		m.st.SharesReleased = map[string]uint64{}
	}
	m.st.SharesReleased[s.Site]++
	delete(m.st.Withheld, s.Site)
	if len(m.shares) == m.cfg.Threshold {
		m.phase = PhaseApplying
		m.ready.Combine = &Combine{Round: m.st.Round, Sites: slices.Sorted(maps.Keys(m.shares))}
	}
	return nil
}

func (m *Machine) applied(a Applied) error {
	if a.Round != m.st.Round || m.phase != PhaseApplying {
		return &Refused{Round: a.Round, Reason: fmt.Sprintf("round %d is not being applied (open: %d, %s)", a.Round, m.st.Round, m.phase)}
	}
	m.st.Version++
	if m.st.Version >= uint64(m.cfg.Rounds) {
		m.phase = PhaseDone
		m.ready.Done = true
		return nil
	}
	m.phase = PhaseIdle
	return nil
}
