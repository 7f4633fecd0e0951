package rewrap

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics publishes the rewrap job: what it did to tokens, how far the pass
// in progress is, and how many tokens each KEK version holds (from the last
// finished pass: the number `keyservice keys retire` is about).
type Metrics struct {
	tokens   *prometheus.CounterVec
	progress prometheus.Gauge
	byKid    *prometheus.GaugeVec
	finished prometheus.Gauge

	mu sync.Mutex
}

// NewMetrics registers the job's metrics in reg (namespace blindgate_gateway).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "blindgate_gateway", Name: "rewrap_tokens_total",
			Help: "Tokens the rewrap job sent to the key service, by result (moved, refreshed, unchanged, skipped, failed).",
		}, []string{"result"}),
		progress: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "blindgate_gateway", Name: "rewrap_progress_ratio",
			Help: "Share of the tokens the rewrap pass in progress has passed (1 when none is running).",
		}),
		byKid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "blindgate_gateway", Name: "tokens",
			Help: "Tokens by the KEK version their ciphertext is under, as the last finished rewrap pass counted them.",
		}, []string{"kid"}),
		finished: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "blindgate_gateway", Name: "rewrap_last_pass_finished_timestamp_seconds",
			Help: "When the last rewrap pass finished (Unix time).",
		}),
	}
	for _, o := range []Outcome{Moved, Refreshed, Unchanged, Skipped, Failed} {
		m.tokens.WithLabelValues(string(o))
	}
	m.progress.Set(1)
	reg.MustRegister(m.tokens, m.progress, m.byKid, m.finished)
	return m
}

// Observe takes a pass's progress after a token (Job.Progress).
func (m *Metrics) Observe(p Progress) {
	if p.Last != OutOfScope && p.Last != "" {
		m.tokens.WithLabelValues(string(p.Last)).Inc()
	}
	m.progress.Set(p.Ratio())
}

// Finished publishes a finished pass's counts by version.
func (m *Metrics) Finished(p Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byKid.Reset()
	for kid, n := range p.ByKid {
		m.byKid.WithLabelValues(kid).Set(float64(n))
	}
	m.progress.Set(1)
	m.finished.Set(float64(p.Finished.Unix()))
}
