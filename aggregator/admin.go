package aggregator

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// Status implements fedclaimspb.AdminServer.
func (s *Server) Status(ctx context.Context, req *fedclaimspb.StatusRequest) (*fedclaimspb.StatusResponse, error) {
	if err := s.checkEnv(ctx, req.GetEnvelope(), req.GetEnvelope().GetRoundId(), "status"); err != nil {
		return nil, err
	}
	var out *fedclaimspb.StatusResponse
	err := s.call(ctx, func() error { out = s.status(); return nil })
	return out, err
}

// status describes the federation; it runs on the loop. The coordinator's page
// (statusView) and the metrics' gauges (observe) are built from the same state.
func (s *Server) status() *fedclaimspb.StatusResponse {
	st := s.round.State()
	out := &fedclaimspb.StatusResponse{
		Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation, RoundId: st.Round},
		Round:    st.Round, Rounds: uint32(s.cfg.Rounds), Sites: s.siteStatus(), MinSites: uint32(s.cfg.MinSites),
	}
	out.State, out.Phase = s.stateOf()
	if s.cur != nil {
		out.Deadline = timestamppb.New(s.cur.deadline)
	}
	p := s.progress()
	out.RoundContributions, out.RoundBytes, out.RoundExpected = uint32(p.contributions), p.bytes, uint32(p.expected)
	for _, r := range s.history {
		out.History = append(out.History, roundMetrics(r))
	}
	out.AuditSeq, out.AuditHead = s.audit.Head()
	return out
}

// stateOf is the federation's state and, in words, the step within it.
func (s *Server) stateOf() (fedclaimspb.StatusResponse_State, string) {
	st := s.round.State()
	switch {
	case st.Stopped && s.round.Phase() == PhaseIdle:
		return fedclaimspb.StatusResponse_STATE_STOPPED, "stopped"
	case s.finished:
		return fedclaimspb.StatusResponse_STATE_FINISHED, "finished"
	case s.setup.Phase() == SetupEnrolling:
		return fedclaimspb.StatusResponse_STATE_ENROLLING, fmt.Sprintf("%d of %d sites enrolled", len(s.setup.State().Enrolled), len(s.sites))
	case s.setup.Phase() == SetupVocabulary:
		return fedclaimspb.StatusResponse_STATE_VOCABULARY, "collecting count tables"
	case s.setup.Phase() != SetupDone:
		return fedclaimspb.StatusResponse_STATE_KEY_SETUP, s.setup.Phase().String()
	case st.Paused && s.round.Phase() == PhaseIdle:
		return fedclaimspb.StatusResponse_STATE_PAUSED, "paused"
	case s.round.Phase() == PhaseIdle && st.Round == 0:
		return fedclaimspb.StatusResponse_STATE_TRAINING, "ready: waiting for admin start"
	}
	return fedclaimspb.StatusResponse_STATE_TRAINING, s.round.Phase().String()
}

// roundProgress is how far the open round's collection has come.
type roundProgress struct {
	// contributions are the encrypted updates accepted into the round's sum, bytes
	// their size; expected the sites that were asked for one (every site of the
	// federation: each gets a TrainTask).
	contributions, expected int
	bytes                   uint64
}

func (s *Server) progress() roundProgress {
	if s.cur == nil {
		return roundProgress{}
	}
	return roundProgress{contributions: len(s.cur.losses), expected: len(s.sites), bytes: s.cur.bytes}
}

func (s *Server) countEnrolled() int {
	n := 0
	for _, id := range s.sites {
		if s.setup.Enrolled(id) {
			n++
		}
	}
	return n
}

// observe sets the metrics' gauges of the federation's state; the loop calls it
// after every event, so that a scrape reads them without waiting for the loop.
func (s *Server) observe() {
	state, _ := s.stateOf()
	p := s.progress()
	seq, _ := s.audit.Head()
	s.metrics.observe(gauges{state: state, setup: s.setup.Phase(), round: s.round.State().Round, rounds: s.cfg.Rounds,
		enrolled: s.countEnrolled(), sites: len(s.sites), contributions: p.contributions, expected: p.expected,
		bytes: p.bytes, auditSeq: seq})
}

func (s *Server) siteStatus() []*fedclaimspb.SiteStatus {
	out := make([]*fedclaimspb.SiteStatus, 0, len(s.sites))
	for _, id := range s.sites {
		ss := &fedclaimspb.SiteStatus{SiteId: id, Online: s.online[id] > 0, LastContributionRound: s.lastRnd[id], Enrolled: s.setup.Enrolled(id),
			SoftwareVersion: s.software[id]}
		if t, ok := s.lastSeen[id]; ok {
			ss.LastSeen = timestamppb.New(t)
		}
		out = append(out, ss)
	}
	return out
}

// Sites implements fedclaimspb.AdminServer.
func (s *Server) Sites(ctx context.Context, req *fedclaimspb.SitesRequest) (*fedclaimspb.SitesResponse, error) {
	if err := s.checkEnv(ctx, req.GetEnvelope(), req.GetEnvelope().GetRoundId(), "sites"); err != nil {
		return nil, err
	}
	var out *fedclaimspb.SitesResponse
	err := s.call(ctx, func() error {
		out = &fedclaimspb.SitesResponse{Envelope: &fedclaimspb.Envelope{FederationId: s.cfg.Federation}, Sites: s.siteStatus()}
		return nil
	})
	return out, err
}

// control audits an admin action, then performs it on the loop.
func (s *Server) control(ctx context.Context, req *fedclaimspb.ControlRequest, action string, do func() error) (*fedclaimspb.StatusResponse, error) {
	if err := s.checkEnv(ctx, req.GetEnvelope(), req.GetEnvelope().GetRoundId(), action); err != nil {
		return nil, err
	}
	id, _ := fedclaimspb.Caller(ctx)
	var out *fedclaimspb.StatusResponse
	err := s.call(ctx, func() error {
		if err := s.record(ctx, audit.ConfigChange, s.round.State().Round, "", map[string]string{"action": action, "by": id.String(), "reason": trim(req.GetReason())}); err != nil {
			return err
		}
		if err := do(); err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.FailedPrecondition, err.Error())
			}
			return s.refuse(ctx, s.round.State().Round, action, err)
		}
		if err := s.saveRound(); err != nil {
			s.halt(err)
			return status.Error(codes.Internal, err.Error())
		}
		s.log.Info("admin action", "action", action, "by", id.String())
		s.process(s.loopCtx)
		out = s.status()
		return nil
	})
	return out, err
}

// Start implements fedclaimspb.AdminServer: setup once every site enrolled, the first
// round once the vocabulary is built.
func (s *Server) Start(ctx context.Context, req *fedclaimspb.ControlRequest) (*fedclaimspb.StatusResponse, error) {
	return s.control(ctx, req, "start", func() error {
		switch s.setup.Phase() {
		case SetupEnrolling:
			return s.setup.Step(Begin{})
		case SetupDone:
			return s.stepRound(s.loopCtx, Start{})
		}
		return fmt.Errorf("setup is under way (%s); it continues on its own", s.setup.Phase())
	})
}

// Pause implements fedclaimspb.AdminServer.
func (s *Server) Pause(ctx context.Context, req *fedclaimspb.ControlRequest) (*fedclaimspb.StatusResponse, error) {
	return s.control(ctx, req, "pause", func() error {
		s.broadcast(fedclaimspb.Control_ACTION_PAUSED, req.GetReason())
		return s.stepRound(s.loopCtx, Pause{})
	})
}

// Resume implements fedclaimspb.AdminServer.
func (s *Server) Resume(ctx context.Context, req *fedclaimspb.ControlRequest) (*fedclaimspb.StatusResponse, error) {
	return s.control(ctx, req, "resume", func() error {
		if err := s.stepRound(s.loopCtx, Resume{}); err != nil {
			return err
		}
		s.broadcast(fedclaimspb.Control_ACTION_RESUMED, req.GetReason())
		if s.setup.Phase() == SetupDone && s.model != nil && (s.round.State().Round > 0 || s.cfg.AutoStart) {
			s.next(s.loopCtx)
		}
		return nil
	})
}

// Stop implements fedclaimspb.AdminServer.
func (s *Server) Stop(ctx context.Context, req *fedclaimspb.ControlRequest) (*fedclaimspb.StatusResponse, error) {
	return s.control(ctx, req, "stop", func() error {
		s.broadcast(fedclaimspb.Control_ACTION_STOPPED, req.GetReason())
		if err := s.stepRound(s.loopCtx, Stop{}); err != nil {
			return err
		}
		s.finishStopped(s.loopCtx)
		return nil
	})
}

func (s *Server) broadcast(action fedclaimspb.Control_Action, reason string) {
	for _, site := range s.sites {
		s.assign(site, s.round.State().Round, time.Time{}, func(a *fedclaimspb.Assignment) {
			a.Task = &fedclaimspb.Assignment_Control{Control: &fedclaimspb.Control{Action: action, Reason: trim(reason)}}
		})
	}
	s.saveSeqs()
}
