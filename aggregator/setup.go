package aggregator

import (
	"fmt"
	"slices"
)

// SetupPhase is where the federation's setup stands, before its first round.
type SetupPhase uint8

const (
	// SetupEnrolling: sites enrol; setup begins once every allow-listed site has.
	SetupEnrolling SetupPhase = iota
	// SetupPublicKey: every site uploads its share of the collective public key.
	SetupPublicKey
	// SetupDealing: every site deals Shamir shares of its secret-key share, one
	// sealed to each site (t < N only).
	SetupDealing
	// SetupCollecting: every site fetches the shares dealt to it (t < N only).
	SetupCollecting
	// SetupInstallingKey: every site installs the collective public key.
	SetupInstallingKey
	// SetupVocabulary: every site uploads its k-floored code counts.
	SetupVocabulary
	// SetupDone: the vocabulary and the initial model exist; rounds may run.
	SetupDone
)

func (p SetupPhase) String() string {
	switch p {
	case SetupEnrolling:
		return "enrolling"
	case SetupPublicKey:
		return "public key shares"
	case SetupDealing:
		return "dealing Shamir shares"
	case SetupCollecting:
		return "collecting Shamir shares"
	case SetupInstallingKey:
		return "installing the collective key"
	case SetupVocabulary:
		return "vocabulary"
	case SetupDone:
		return "done"
	}
	return fmt.Sprintf("setup(%d)", uint8(p))
}

// Setup messages: a site enrolled, the coordinator began setup, or a site finished
// the step of the current phase.
type (
	Enrolled struct{ Site string }
	Begin    struct{}
	// StepDone reports that Site finished Phase's step: uploaded its public-key
	// share, all its dealt shares or its count table, or acknowledged collecting its
	// shares or installing the key.
	StepDone struct {
		Site  string
		Phase SetupPhase
	}
)

// SetupReady is what the setup machine asks of the I/O layer, in order: build the
// collective public key from the shares, send Assign's step to its sites, build the
// vocabulary and the initial model. Nil or false fields ask nothing.
type SetupReady struct {
	BuildKey        bool
	Assign          *Assign
	BuildVocabulary bool
}

// IsEmpty reports whether rd asks for nothing.
func (rd SetupReady) IsEmpty() bool { return !rd.BuildKey && rd.Assign == nil && !rd.BuildVocabulary }

// Assign asks the I/O layer to give Sites the step of Phase.
type Assign struct {
	Phase SetupPhase
	Sites []string
}

// SetupState is what survives a restart: the phase, who enrolled and who finished
// the current phase's step. The I/O layer saves it after every step, beside the
// blobs received, so a restarted aggregator resumes setup where it was.
type SetupState struct {
	Phase    SetupPhase `json:"phase"`
	Enrolled []string   `json:"enrolled"`
	Finished []string   `json:"finished"`
}

// SetupMachine is the federation's setup as a pure state machine, beside Machine:
// enrolment of every allow-listed site, the collective key, the threshold re-sharing
// (skipped when t = N), then the vocabulary. Every step needs every site, since the
// collective key is made from all their shares.
type SetupMachine struct {
	rules    Rules
	allowed  map[string]bool
	phase    SetupPhase
	enrolled map[string]bool
	finished map[string]bool
	ready    SetupReady
}

// NewSetupMachine returns a setup machine at st (the zero SetupState for a new
// federation).
func NewSetupMachine(r Rules, st SetupState) (*SetupMachine, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("round rules: %w", err)
	}
	if st.Phase > SetupDone {
		return nil, fmt.Errorf("setup state: unknown phase %d", st.Phase)
	}
	m := &SetupMachine{rules: r, allowed: map[string]bool{}, phase: st.Phase, enrolled: map[string]bool{}, finished: map[string]bool{}}
	for _, s := range r.Sites {
		m.allowed[s] = true
	}
	for _, s := range st.Enrolled {
		if !m.allowed[s] {
			return nil, fmt.Errorf("setup state: enrolled site %q is not allow-listed", s)
		}
		m.enrolled[s] = true
	}
	for _, s := range st.Finished {
		if !m.allowed[s] {
			return nil, fmt.Errorf("setup state: site %q is not allow-listed", s)
		}
		m.finished[s] = true
	}
	return m, nil
}

// State returns what must be persisted to resume.
func (m *SetupMachine) State() SetupState {
	return SetupState{Phase: m.phase, Enrolled: sortedKeys(m.enrolled), Finished: sortedKeys(m.finished)}
}

// Phase returns the current setup phase.
func (m *SetupMachine) Phase() SetupPhase { return m.phase }

// Enrolled reports whether site has enrolled.
func (m *SetupMachine) Enrolled(site string) bool { return m.enrolled[site] }

// AllEnrolled reports whether every allow-listed site has enrolled.
func (m *SetupMachine) AllEnrolled() bool { return len(m.enrolled) == len(m.rules.Sites) }

// Pending returns the sites that still owe the current phase's step, sorted: what a
// restarted aggregator assigns again.
func (m *SetupMachine) Pending() []string {
	var out []string
	for _, s := range m.rules.Sites {
		if !m.finished[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Ready returns what the I/O layer must do now.
func (m *SetupMachine) Ready() SetupReady { return m.ready }

// Advance acknowledges the last Ready.
func (m *SetupMachine) Advance() { m.ready = SetupReady{} }

// Step applies one message. A *Refused error leaves the state unchanged.
func (m *SetupMachine) Step(msg Msg) error {
	switch msg := msg.(type) {
	case Enrolled:
		if !m.allowed[msg.Site] {
			return &Refused{Site: msg.Site, Reason: "site is not allow-listed"}
		}
		m.enrolled[msg.Site] = true
		return nil
	case Begin:
		switch {
		case m.phase != SetupEnrolling:
			return &Refused{Reason: "setup has already begun (" + m.phase.String() + ")"}
		case !m.AllEnrolled():
			return &Refused{Reason: fmt.Sprintf("%d of %d sites enrolled; the collective key needs all", len(m.enrolled), len(m.rules.Sites))}
		}
		m.enter(SetupPublicKey)
		return nil
	case StepDone:
		return m.stepDone(msg)
	}
	return fmt.Errorf("aggregator: setup: unknown message %T", msg)
}

// AdmitStep says whether site may do phase's step now: the question a handler asks
// before it reads a byte of a setup upload, the same rule stepDone applies.
func (m *SetupMachine) AdmitStep(site string, phase SetupPhase) error {
	switch {
	case !m.allowed[site]:
		return &Refused{Site: site, Reason: "site is not allow-listed"}
	case phase != m.phase || m.phase == SetupEnrolling || m.phase == SetupDone:
		return &Refused{Site: site, Reason: fmt.Sprintf("setup step %q is not under way (phase: %s)", phase, m.phase)}
	case m.finished[site]:
		return &Refused{Site: site, Reason: "site already finished step " + phase.String()}
	}
	return nil
}

func (m *SetupMachine) stepDone(d StepDone) error {
	if err := m.AdmitStep(d.Site, d.Phase); err != nil {
		return err
	}
	m.finished[d.Site] = true
	if len(m.finished) < len(m.rules.Sites) {
		return nil
	}
	switch m.phase {
	case SetupPublicKey:
		m.ready.BuildKey = true
		if m.rules.Threshold < len(m.rules.Sites) {
			m.enter(SetupDealing)
		} else {
			m.enter(SetupInstallingKey)
		}
	case SetupDealing:
		m.enter(SetupCollecting)
	case SetupCollecting:
		m.enter(SetupInstallingKey)
	case SetupInstallingKey:
		m.enter(SetupVocabulary)
	case SetupVocabulary:
		m.phase = SetupDone
		clear(m.finished)
		m.ready.BuildVocabulary = true
	}
	return nil
}

func (Enrolled) isMsg() {}
func (Begin) isMsg()    {}
func (StepDone) isMsg() {}

func (m *SetupMachine) enter(p SetupPhase) {
	m.phase = p
	clear(m.finished)
	m.ready.Assign = &Assign{Phase: p, Sites: slices.Sorted(slices.Values(m.rules.Sites))}
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
