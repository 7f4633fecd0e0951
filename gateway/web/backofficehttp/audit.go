package backofficehttp

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// auditRow is one key-service audit event as the page shows it.
type auditRow struct {
	Seq                                  uint64
	Time, Event, Actor, Client, Origin   string
	ActorName                            string // the operator's username or the merchant's name, when Actor is one
	ActorURL                             string // this view filtered by the actor
	Outcome, Resource, Kid, Reason, Code string
	Alarm, Denied, Failure               bool
}

// auditPage is the data of backoffice_audit.html.
type auditPage struct {
	pageBase
	Actor, Outcome string
	Outcomes       []string
	Rows           []auditRow
	ChainOK        bool
	ChainError     string
	Head           string
	Lines          int
	Alarms         int
	Scoped         bool   // a merchant admin: only its own operators' events
	Older          string // the next page's URL, "" on the last page
	Error          string
}

// auditView shows one page of the key service's audit trail; the policy
// (admins only, a merchant admin's scope, auditing the view) is
// backoffice.Service.AuditView's.
func (h *Handler) auditView(c *fiber.Ctx, a *backoffice.Actor) error {
	p := auditPage{
		pageBase: h.base(c.UserContext(), "Audit trail", "audit", a),
		Actor:    strings.TrimSpace(c.Query("actor")),
		Outcome:  strings.TrimSpace(c.Query("outcome")),
		Outcomes: []string{audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied},
		Scoped:   !a.Op.Platform(),
	}
	f := backoffice.AuditFilter{Actor: p.Actor, Outcome: p.Outcome}
	if v := c.Query("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			p.Error = "The page cursor is not valid; start from the newest events."
			return h.render(c, http.StatusBadRequest, "backoffice_audit.html", p)
		}
		f.Before = n
	}
	res, err := h.d.Office.AuditView(c.UserContext(), *a, f)
	var ie *backoffice.InvalidError
	switch {
	case errors.Is(err, backoffice.ErrForbidden):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "Only administrators may read the audit trail."}
	case errors.As(err, &ie):
		p.Error = ie.Msg
		return h.render(c, http.StatusBadRequest, "backoffice_audit.html", p)
	case err != nil:
		return auditQueryError(err)
	}
	p.ChainOK, p.ChainError, p.Head, p.Lines = res.ChainOK, res.ChainError, res.Head, res.Lines
	if res.Next != 0 {
		q := url.Values{"before": {strconv.FormatUint(res.Next, 10)}}
		if p.Actor != "" {
			q.Set("actor", p.Actor)
		}
		if p.Outcome != "" {
			q.Set("outcome", p.Outcome)
		}
		p.Older = Prefix + "/audit?" + q.Encode()
	}
	for _, e := range res.Events {
		r := auditRow{
			Seq: e.Seq, Time: e.Time.UTC().Format("2006-01-02 15:04:05 UTC"), Event: e.Event, Actor: e.Actor, ActorName: res.Names[e.Actor],
			Client: e.Client, Origin: e.Origin, Outcome: e.Outcome, Resource: e.Resource, Kid: e.Kid,
			Reason: e.Reason, Code: e.Code,
			Alarm:   e.Event == audit.EventAlarm,
			Denied:  e.Outcome == wire.OutcomeDenied,
			Failure: e.Outcome == wire.OutcomeFailure,
		}
		// The filter takes what a person types: an operator's username.
		filterBy := e.Actor
		if strings.HasPrefix(e.Actor, "op_") && r.ActorName != "" {
			filterBy = r.ActorName
		}
		r.ActorURL = Prefix + "/audit?" + url.Values{"actor": {filterBy}}.Encode()
		if r.Alarm {
			p.Alarms++
		}
		p.Rows = append(p.Rows, r)
	}
	return h.render(c, http.StatusOK, "backoffice_audit.html", p)
}

// auditQueryError says why the trail cannot be shown; the domain classified
// the key service's answer by its code.
func auditQueryError(err error) error {
	var ke *backoffice.KeyServiceError
	if !errors.As(err, &ke) {
		return domainError(err)
	}
	switch {
	case errors.Is(err, backoffice.ErrKeyServiceForbidden):
		return &apierr.Error{Status: http.StatusForbidden, Code: apierr.Forbidden.Code, Err: err,
			Message: "The key service does not allow this gateway to read its audit trail (allow-list operation \"audit\")."}
	case errors.Is(err, backoffice.ErrKeyServiceLimited):
		return &apierr.Error{Status: http.StatusTooManyRequests, Code: apierr.RateLimited.Code, RetryAfter: ke.RetryAfter, Err: err,
			Message: "The key service is busy."}
	case errors.Is(err, backoffice.ErrKeyServiceInvalid):
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Err: err,
			Message: "The key service found the audit filter invalid."}
	}
	return &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.KeyServiceDown.Code, Err: err,
		Message: "The key service's audit trail cannot be read right now; try again later."}
}
