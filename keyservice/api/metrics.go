package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blindgate/blindgate/internal/httpmetrics"
)

// Metrics are the key service's Prometheus series: the shared HTTP ones and
// successful private-key operations by client and operation.
type Metrics struct {
	*httpmetrics.Metrics
	decrypts *prometheus.CounterVec
}

// NewMetrics returns a registry of its own (no global state).
func NewMetrics() *Metrics {
	m := &Metrics{
		Metrics: httpmetrics.New("blindgate_keyservice"),
		decrypts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindgate_keyservice_decrypts_total", Help: "Successful private-key operations by client and operation.",
		}, []string{"client", "op"}),
	}
	m.Registry().MustRegister(m.decrypts)
	return m
}

func (m *Metrics) middleware(c *fiber.Ctx) error { return m.Middleware(c) }

func (m *Metrics) decrypted(client, op string) {
	m.decrypts.WithLabelValues(client, op).Inc()
}

func (m *Metrics) handler() fiber.Handler { return m.Handler() }
