package web

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/webhooks"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/httpapi"
)

// Webhooks is the merchant's webhook endpoints and delivery log
// (gateway/webhooks).
type Webhooks interface {
	CreateEndpoint(ctx context.Context, merchant, url string) (webhooks.Endpoint, error)
	Endpoints(ctx context.Context, merchant string) ([]webhooks.Endpoint, error)
	DeleteEndpoint(ctx context.Context, merchant, id string) error
	Deliveries(ctx context.Context, merchant string, limit int) ([]webhooks.Delivery, error)
}

var _ Webhooks = (*webhooks.Service)(nil)

// CreateEndpointRequest is the body of POST /v1/webhooks/endpoints.
type CreateEndpointRequest struct {
	URL string `json:"url"`
}

// Validate requires the URL; its rules are webhooks.ValidateURL's.
func (r CreateEndpointRequest) Validate() error {
	if r.URL == "" {
		return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code, Message: "Invalid field: url is required"}
	}
	return nil
}

// EndpointView is an endpoint as listed: never its secret.
type EndpointView struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
}

// CreatedEndpoint answers creation: the only answer with the secret.
type CreatedEndpoint struct {
	EndpointView
	Secret string `json:"secret"`
}

// DeliveryView is one line of the delivery log: no payload.
type DeliveryView struct {
	ID             string     `json:"id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	EndpointID     string     `json:"endpoint_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LatencyMS      int64      `json:"latency_ms"`
	NextRetryAt    *time.Time `json:"next_retry_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func (s *Server) webhooksOn() (Webhooks, error) {
	if s.deps.Webhooks == nil {
		return nil, apierr.NotFound
	}
	return s.deps.Webhooks, nil
}

func (s *Server) createWebhookEndpoint(c *fiber.Ctx) error {
	wh, err := s.webhooksOn()
	if err != nil {
		return err
	}
	var req CreateEndpointRequest
	if err := httpapi.Bind(c.Body(), &req); err != nil {
		return err
	}
	e, err := wh.CreateEndpoint(c.UserContext(), merchantOf(c).ID, req.URL)
	if err != nil {
		return webhookError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(CreatedEndpoint{EndpointView: EndpointView{ID: e.ID, URL: e.URL, CreatedAt: e.CreatedAt}, Secret: e.Secret})
}

func (s *Server) listWebhookEndpoints(c *fiber.Ctx) error {
	wh, err := s.webhooksOn()
	if err != nil {
		return err
	}
	eps, err := wh.Endpoints(c.UserContext(), merchantOf(c).ID)
	if err != nil {
		return webhookError(err)
	}
	out := struct {
		Data []EndpointView `json:"data"`
	}{Data: make([]EndpointView, 0, len(eps))}
	for _, e := range eps {
		out.Data = append(out.Data, EndpointView{ID: e.ID, URL: e.URL, CreatedAt: e.CreatedAt})
	}
	return c.JSON(out)
}

func (s *Server) deleteWebhookEndpoint(c *fiber.Ctx) error {
	wh, err := s.webhooksOn()
	if err != nil {
		return err
	}
	if err := wh.DeleteEndpoint(c.UserContext(), merchantOf(c).ID, strings.Clone(c.Params("id"))); err != nil {
		return webhookError(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listWebhookDeliveries(c *fiber.Ctx) error {
	wh, err := s.webhooksOn()
	if err != nil {
		return err
	}
	limit := webhooks.MaxLogLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > webhooks.MaxLogLimit {
			return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code, Message: fmt.Sprintf("Invalid field: limit must be 1-%d", webhooks.MaxLogLimit)}
		}
		limit = n
	}
	ds, err := wh.Deliveries(c.UserContext(), merchantOf(c).ID, limit)
	if err != nil {
		return webhookError(err)
	}
	out := struct {
		Data []DeliveryView `json:"data"`
	}{Data: make([]DeliveryView, 0, len(ds))}
	for _, d := range ds {
		v := DeliveryView{ID: d.ID, EventID: d.EventID, EventType: d.EventType, EndpointID: d.EndpointID, Status: d.Status,
			Attempts: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError, LatencyMS: d.LatencyMS,
			CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
		if d.Status == webhooks.StatusPending && !d.NextAt.IsZero() {
			next := d.NextAt
			v.NextRetryAt = &next
		}
		out.Data = append(out.Data, v)
	}
	return c.JSON(out)
}

func webhookError(err error) error {
	var msg string
	switch {
	case errors.Is(err, webhooks.ErrNotFound):
		return apierr.NotFound.Wrap(err)
	case errors.Is(err, webhooks.ErrInvalidURL):
		// The reason is one of ValidateURL's fixed texts, never the URL.
		msg = "Invalid field: url " + strings.TrimPrefix(err.Error(), webhooks.ErrInvalidURL.Error()+": ")
	case errors.Is(err, webhooks.ErrTooMany):
		msg = fmt.Sprintf("Invalid field: at most %d webhook endpoints; delete one first", webhooks.MaxEndpoints)
	default:
		return apierr.Unavailable.Wrap(err)
	}
	return &apierr.Error{Status: 400, Code: apierr.InvalidField.Code, Message: msg, Err: err}
}
