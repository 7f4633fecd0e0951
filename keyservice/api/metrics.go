package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the key service's Prometheus series. Labels are route
// templates, status codes, client ids and operation names: never a value
// taken from a request body.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	decrypts *prometheus.CounterVec
}

// NewMetrics returns a registry of its own (no global state).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindgate_keyservice_requests_total", Help: "Requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "blindgate_keyservice_request_seconds", Help: "Request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		decrypts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindgate_keyservice_decrypts_total", Help: "Successful private-key operations by client and operation.",
		}, []string{"client", "op"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.decrypts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets callers add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) middleware(c *fiber.Ctx) error {
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

func (m *Metrics) decrypted(client, op string) {
	m.decrypts.WithLabelValues(client, op).Inc()
}

func (m *Metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}
