package backoffice

import (
	"context"
	"errors"
	"strings"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// AuditPageSize is how many events one page of the audit view shows.
const AuditPageSize = 200

// AuditFilter is the audit view's form. Actor is an operator's username
// (what a person types) or an actor id as the trail records it (an
// operator's op_ id, a merchant's m_ id, keyservice); a username is looked
// up first.
type AuditFilter struct {
	Actor, Outcome string
	// Before is the paging cursor: show events older than this seq (0: the
	// newest).
	Before uint64
}

// AuditPage is one page of the key service's audit trail as an operator
// may see it.
type AuditPage struct {
	Events []wire.AuditEvent
	// Names maps the actors to what a person reads: an operator's id to its
	// username, a merchant's id to its name, for those the viewer may see.
	Names map[string]string
	// Actor is the actor the filter selected (the id a username resolved
	// to), "" when the view is not filtered by actor.
	Actor      string
	ChainOK    bool
	ChainError string
	Head       string
	Lines      int
	// Next is the cursor of the next (older) page; 0 when there is none.
	Next uint64
	// Scoped: a merchant's admin, who sees only its own operators' events.
	Scoped bool
}

// AuditView reads one page of the key service's audit trail (who, what,
// when, outcome, reason) with its hash-chain check. Admins only
// (operators.ActionAudit). A merchant's admin sees only events whose actor
// is one of that merchant's operators: the trail is the platform's, so the
// key service filters by that set of actors, and pages, itself.
func (s *Service) AuditView(ctx context.Context, a Actor, f AuditFilter) (AuditPage, error) {
	p := AuditPage{Scoped: !a.Op.Platform()}
	if !a.Op.Role.Can(operators.ActionAudit) {
		return p, ErrForbidden
	}
	typed := strings.TrimSpace(f.Actor)
	req := wire.AuditQueryRequest{Actor: typed, Outcome: f.Outcome, BeforeSeq: f.Before, Limit: AuditPageSize}
	if err := req.Validate(); err != nil {
		return p, &InvalidError{Field: "filter", Err: err,
			Msg: "Operator must be a username or an actor id (no spaces), and outcome one of the listed values."}
	}
	var mine map[string]bool
	if p.Scoped {
		ops, err := s.d.Operators.List(ctx, a.Op.MerchantID)
		if err != nil {
			return p, unavailable(err)
		}
		// The viewer is always in the set, so it is never empty: an empty
		// set would mean "every actor" to the key service.
		mine = map[string]bool{a.Op.ID: true}
		req.Actors = []string{a.Op.ID}
		for _, o := range ops {
			if o.MerchantID != a.Op.MerchantID {
				continue
			}
			if !mine[o.ID] {
				mine[o.ID] = true
				req.Actors = append(req.Actors, o.ID)
			}
			// A username is looked up among the merchant's own operators
			// only, so another merchant's names are never confirmed.
			if typed != "" && strings.EqualFold(o.Username, typed) {
				req.Actor = o.ID
			}
		}
		if req.Actor != "" && !mine[req.Actor] {
			return p, invalid("actor", "No operator of your merchant has that username or id.")
		}
		if err := req.Validate(); err != nil {
			return p, unavailable(err) // more operators than one query may name
		}
	} else if typed != "" {
		op, err := s.d.Operators.GetByUsername(ctx, typed)
		switch {
		case err == nil:
			req.Actor = op.ID
		case !errors.Is(err, operators.ErrNotFound):
			return p, unavailable(err)
		}
	}
	p.Actor = req.Actor
	filter := "all"
	if req.Actor != "" || f.Outcome != "" {
		filter = strings.TrimSpace("actor=" + req.Actor + " outcome=" + f.Outcome)
	}
	// Reading the trail is itself audited (PCI DSS 10.2.1.3), before it is shown.
	if err := s.record(ctx, a, audit.Event{Event: audit.EventAuditView, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: filter}); err != nil {
		return p, err
	}
	if s.d.KeyService == nil {
		return p, &KeyServiceError{Kind: ErrKeyServiceDown, Err: errors.New("backoffice: no key service configured")}
	}
	res, err := s.d.KeyService.AuditQuery(ctx, req)
	if err != nil {
		return p, keyServiceError(err)
	}
	p.ChainOK, p.ChainError, p.Head, p.Lines, p.Next = res.ChainOK, res.ChainError, res.Head, res.Lines, res.NextBeforeSeq
	for _, e := range res.Events {
		// The key service filtered; this re-check keeps another merchant's
		// events off the page should it ever not have.
		if mine != nil && !mine[e.Actor] {
			continue
		}
		p.Events = append(p.Events, e)
	}
	p.Names = s.actorNames(ctx, a, p.Events)
	return p, nil
}

// actorNames maps the events' actors to what a person reads: an operator
// id to its username, a merchant id (the actor of a forward) to the
// merchant's name. The events are already scoped to the viewer; an id that
// is not found stays an id.
func (s *Service) actorNames(ctx context.Context, a Actor, events []wire.AuditEvent) map[string]string {
	names := map[string]string{}
	var merchantIDs []string
	for _, e := range events {
		if _, done := names[e.Actor]; done {
			continue
		}
		switch {
		case strings.HasPrefix(e.Actor, "op_"):
			names[e.Actor] = ""
			if op, err := s.d.Operators.Get(ctx, e.Actor); err == nil {
				names[e.Actor] = op.Username
			}
		case strings.HasPrefix(e.Actor, "m_"):
			names[e.Actor] = ""
			merchantIDs = append(merchantIDs, e.Actor)
		}
	}
	for id, name := range s.MerchantNames(ctx, a, merchantIDs...) {
		names[id] = name
	}
	return names
}
