package readiness

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the checks as the gauge name{check="<name>"}: 1 when
// the check passes, 0 when not. A scrape takes a Report (cached like any
// other), so the gauge is as fresh as /readyz without a poller of its own.
// The label is the check's fixed name; why it fails is in the log.
func (c *Checker) Collector(name string) prometheus.Collector {
	return &collector{c: c, desc: prometheus.NewDesc(name,
		"Whether a readiness check passes (1) or not (0); /readyz is ready when all pass.", []string{"check"}, nil)}
}

type collector struct {
	c    *Checker
	desc *prometheus.Desc
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	// The run itself ends by the probes' deadline; the margin keeps a slow
	// scheduler from turning a finished run into "timeout".
	ctx, cancel := context.WithTimeout(context.Background(), m.c.opts.Timeout+time.Second)
	defer cancel()
	r := m.c.Report(ctx)
	for _, name := range m.c.Names() {
		v := 0.0
		if r.OK(name) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, v, name)
	}
}
