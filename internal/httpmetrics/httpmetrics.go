// Package httpmetrics gives a Fiber app Prometheus metrics: requests by
// route template, method and status, a latency histogram by route, and the
// Go and process collectors (goroutines, heap, RSS). Labels are route
// templates and status codes only: never a value taken from a request.
package httpmetrics

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blindgate/blindgate/internal/apierr"
)

// Metrics is one service's registry (no global state).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New returns metrics named <namespace>_requests_total and <namespace>_request_seconds.
func New(namespace string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: namespace + "_requests_total", Help: "Requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: namespace + "_request_seconds", Help: "Request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets a service add its own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Middleware counts every request, refused and failed ones included; register it first.
func (m *Metrics) Middleware(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; count by the status it will choose.
		status = statusOf(err)
	}
	route := "unmatched"
	if r := c.Route(); r != nil && r.Path != "/" {
		route = r.Path
	}
	// Fiber's strings alias a reused buffer; a label outlives the request.
	m.requests.WithLabelValues(route, strings.Clone(c.Method()), strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	return err
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

func statusOf(err error) int {
	var ae *apierr.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae.Status
	case errors.As(err, &fe):
		return fe.Code
	default:
		return fiber.StatusInternalServerError
	}
}
