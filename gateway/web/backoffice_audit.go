package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// boAuditLimit is how many events one audit page asks for.
const boAuditLimit = 200

// boAuditRow is one key-service audit event as the page shows it.
type boAuditRow struct {
	Seq                                  uint64
	Time, Event, Actor, Client, Origin   string
	ActorName                            string // the operator's username, when Actor is one
	Outcome, Resource, Kid, Reason, Code string
	Alarm, Denied, Failure               bool
}

// boAuditPage is the data of backoffice_audit.html.
type boAuditPage struct {
	boBase
	Actor, Outcome string
	Outcomes       []string
	Rows           []boAuditRow
	ChainOK        bool
	ChainError     string
	Head           string
	Lines          int
	Alarms         int
	Scoped         bool // a merchant admin: only its own operators' events
	Error          string
}

// boAuditView shows the key service's audit trail (who, what, when, outcome,
// reason) with the result of its hash-chain verification. Admins only
// (operators.ActionAudit). A merchant admin sees only events whose actor
// is one of that merchant's operators: the trail is the platform's.
func (s *Server) boAuditView(c *fiber.Ctx, a *boActor) error {
	if !a.Op.Role.Can(operators.ActionAudit) {
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Message: "Only administrators may read the audit trail."}
	}
	p := boAuditPage{
		boBase:   s.base("Audit trail", "audit", a),
		Actor:    strings.TrimSpace(c.Query("actor")),
		Outcome:  strings.TrimSpace(c.Query("outcome")),
		Outcomes: []string{audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied},
		Scoped:   !a.Op.Platform(),
	}
	req := wire.AuditQueryRequest{Actor: p.Actor, Outcome: p.Outcome, Limit: boAuditLimit}
	if err := req.Validate(); err != nil {
		p.Error = "Actor must be an operator id (no spaces) and outcome one of the listed values."
		return s.render(c, http.StatusBadRequest, "backoffice_audit.html", p)
	}
	var mine map[string]bool
	if p.Scoped {
		ops, err := s.deps.Operators.List(c.UserContext(), a.Op.MerchantID)
		if err != nil {
			return apierr.Unavailable.Wrap(err)
		}
		mine = make(map[string]bool, len(ops))
		for _, o := range ops {
			mine[o.ID] = true
		}
		if p.Actor != "" && !mine[p.Actor] {
			p.Error = "That operator is not one of your merchant's."
			return s.render(c, http.StatusBadRequest, "backoffice_audit.html", p)
		}
		if p.Actor == "" {
			req.Limit = wire.MaxAuditPage // filtered below
		}
	}
	filter := "all"
	if p.Actor != "" || p.Outcome != "" {
		filter = strings.TrimSpace("actor=" + p.Actor + " outcome=" + p.Outcome)
	}
	// Reading the trail is itself audited (PCI DSS 10.2.1.3), before it is shown.
	if err := s.boAudit(c, audit.Event{Event: audit.EventAuditView, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: filter}); err != nil {
		return err
	}
	if s.deps.KeyService == nil {
		return apierr.KeyServiceDown
	}
	res, err := s.deps.KeyService.AuditQuery(c.UserContext(), req)
	if err != nil {
		return auditQueryError(err)
	}
	p.ChainOK, p.ChainError, p.Head, p.Lines = res.ChainOK, res.ChainError, res.Head, res.Lines
	names := s.operatorNames(c, res.Events, mine)
	for _, e := range res.Events {
		if mine != nil && !mine[e.Actor] {
			continue
		}
		if len(p.Rows) == boAuditLimit {
			break
		}
		r := boAuditRow{
			Seq: e.Seq, Time: e.Time.UTC().Format("2006-01-02 15:04:05 UTC"), Event: e.Event, Actor: e.Actor, ActorName: names[e.Actor],
			Client: e.Client, Origin: e.Origin, Outcome: e.Outcome, Resource: e.Resource, Kid: e.Kid,
			Reason: e.Reason, Code: e.Code,
			Alarm:   e.Event == audit.EventAlarm,
			Denied:  e.Outcome == wire.OutcomeDenied,
			Failure: e.Outcome == wire.OutcomeFailure,
		}
		if r.Alarm {
			p.Alarms++
		}
		p.Rows = append(p.Rows, r)
	}
	return s.render(c, http.StatusOK, "backoffice_audit.html", p)
}

// operatorNames maps the operator ids among the events' actors to
// usernames, so "who" reads as a person. Only operators the viewer may see
// are named; an id that is not found stays an id.
func (s *Server) operatorNames(c *fiber.Ctx, events []wire.AuditEvent, mine map[string]bool) map[string]string {
	names := map[string]string{}
	for _, e := range events {
		if _, done := names[e.Actor]; done || !strings.HasPrefix(e.Actor, "op_") || (mine != nil && !mine[e.Actor]) {
			continue
		}
		names[e.Actor] = ""
		if op, err := s.deps.Operators.Get(c.UserContext(), e.Actor); err == nil {
			names[e.Actor] = op.Username
		}
	}
	return names
}

func auditQueryError(err error) error {
	var ke *client.Error
	if errors.As(err, &ke) && ke.Status == http.StatusForbidden {
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "The key service does not allow this gateway to read its audit trail (allow-list operation \"audit\")."}
	}
	if errors.As(err, &ke) && ke.Status == http.StatusTooManyRequests {
		return &apierr.Error{Status: http.StatusTooManyRequests, Code: apierr.RateLimited.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "The key service is busy."}
	}
	return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code, Err: err,
		Message: "The key service's audit trail cannot be read right now; try again later."}
}
