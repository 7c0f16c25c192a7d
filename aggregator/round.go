package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Phase is where the federation's current round stands.
type Phase uint8

const (
	// PhaseIdle: no round is open (before the first, between rounds while paused, or
	// after a failed round that waits to be started again).
	PhaseIdle Phase = iota
	// PhaseCollecting: the round is announced and encrypted updates are accepted.
	PhaseCollecting
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
	case c.MinSites < c.Threshold:
		// A sum decrypted by fewer than t contributors could not be decrypted at all,
		// and a sum of fewer than t updates would let t-1 colluders learn one update.
		return fmt.Errorf("min_sites %d is below the threshold %d", c.MinSites, c.Threshold)
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

// ShareRequest asks exactly these Sites, t of the round's contributors, for one
// decryption share each of Round's sum. Threshold decryption fixes the decrypting
// set before the shares are made (each share carries its Lagrange coefficient for
// that set), so the machine picks it when the sum closes. Contributors is everyone
// whose update is in the sum, for the sites to check against min_sites.
type ShareRequest struct {
	Round        uint64
	Sites        []string
	Contributors []string
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
// in order: Announce, ShareRequest, Combine, Abort. A nil field means nothing to do.
type Ready struct {
	Announce     *Announce
	ShareRequest *ShareRequest
	Combine      *Combine
	Abort        *Abort
	// Done is set once, when the last planned round has been applied.
	Done bool
}

// IsEmpty reports whether rd asks for nothing.
func (rd Ready) IsEmpty() bool {
	return rd.Announce == nil && rd.ShareRequest == nil && rd.Combine == nil && rd.Abort == nil && !rd.Done
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
func (m *Machine) State() State { return m.st }

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

func (m *Machine) uploaded(u Uploaded) error {
	if err := m.check(u.Site, u.Round); err != nil {
		return err
	}
	if m.phase != PhaseCollecting {
		return &Refused{Site: u.Site, Round: u.Round, Reason: "the sum is closed (" + m.phase.String() + ")"}
	}
	if m.contributed[u.Site] {
		return &Refused{Site: u.Site, Round: u.Round, Reason: "site already contributed to this round"}
	}
	m.contributed[u.Site] = true
	m.contributors = append(m.contributors, u.Site)
	m.digests[u.Site] = u.Digest
	if len(m.contributors) == len(m.cfg.Sites) {
		// Everyone is in: waiting for the deadline would only add latency.
		m.closeSum()
	}
	return nil
}

// closeSum ends collection and picks the decrypting set: the first t contributors in
// site-id order, so the choice does not depend on arrival order. Enough contributors
// is the caller's check.
func (m *Machine) closeSum() {
	m.phase = PhaseDecrypting
	sorted := slices.Sorted(slices.Values(m.contributors))
	set := sorted[:m.cfg.Threshold]
	m.decryptors = make(map[string]bool, len(set))
	for _, s := range set {
		m.decryptors[s] = true
	}
	m.ready.ShareRequest = &ShareRequest{Round: m.st.Round, Sites: set, Contributors: slices.Clone(m.contributors)}
}

func (m *Machine) deadline(d Deadline) error {
	if d.Round != m.st.Round {
		return nil // a stale timer for a round already ended
	}
	switch m.phase {
	case PhaseCollecting:
		if len(m.contributors) < m.cfg.MinSites {
			m.abort(fmt.Sprintf("%d contributions at the deadline, min_sites is %d", len(m.contributors), m.cfg.MinSites))
			return nil
		}
		m.closeSum()
	case PhaseDecrypting:
		m.abort(fmt.Sprintf("%d decryption shares at the deadline, threshold is %d", len(m.shares), m.cfg.Threshold))
	}
	return nil
}

func (m *Machine) abort(reason string) {
	m.ready.Abort = &Abort{Round: m.st.Round, Reason: reason}
	m.phase = PhaseIdle
}

func (m *Machine) share(s Share) error {
	if err := m.check(s.Site, s.Round); err != nil {
		return err
	}
	if m.phase != PhaseDecrypting {
		return &Refused{Site: s.Site, Round: s.Round, Reason: "no decryption is under way (" + m.phase.String() + ")"}
	}
	if !m.decryptors[s.Site] {
		return &Refused{Site: s.Site, Round: s.Round, Reason: "site is not in this round's decrypting set"}
	}
	if m.shares[s.Site] {
		return &Refused{Site: s.Site, Round: s.Round, Reason: "site already sent its share"}
	}
	m.shares[s.Site] = true
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
