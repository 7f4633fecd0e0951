package bench

import (
	"math/bits"
	"time"
)

// hist is a fixed-size log-linear latency histogram (32 sub-buckets per
// power of two, about 3% precision), so a 10-minute soak records every
// request in constant memory.
type hist struct {
	counts [2048]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func bucketOf(v time.Duration) int {
	if v < 32 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 6
	return min(32+e*32+int(uint64(v)>>e)-32, 2047)
}

// bucketMid is a representative value of bucket i.
func bucketMid(i int) time.Duration {
	if i < 32 {
		return time.Duration(i)
	}
	e := (i - 32) / 32
	m := int64((i-32)%32 + 32)
	return time.Duration(m<<e + (int64(1)<<e)/2)
}

func (h *hist) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketMid(i), h.max)
		}
	}
	return h.max
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
