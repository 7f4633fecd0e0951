package tokens

import (
	"context"
	"encoding/base32"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

// BenchmarkSearchAtScale measures the back office's searches on a generated
// data set in a Redis server of its own (a redis-server binary on PATH or
// $BLINDGATE_TEST_REDIS_SERVER; nothing on disk), written through Put as the
// gateway writes tokens:
//
//	BLINDGATE_BENCH_SEARCH_TOKENS=1000000 go test ./gateway/tokens \
//	  -run '^$' -bench SearchAtScale -benchtime 3000x -timeout 60m
//
// BLINDGATE_BENCH_SEARCH_TOKENS (default 20000) tokens across
// BLINDGATE_BENCH_SEARCH_MERCHANTS (default 100) merchants of unequal
// sizes (the largest holds about 12%), over a year, BINs from a pool of
// 3000 with a skewed popularity (the most common about 3% of cards),
// brands by the BIN's first digit (but 0.2% of Mastercard BINs' tokens say
// Visa, so that two long lists barely meet), last 4 uniform (never 0000), 600-byte
// ciphertexts (a P-256 card JWE is about 585 bytes, RSA-3072 about 863).
// Each iteration is one search, the kinds in turn (searchKinds); it
// reports the percentiles of each kind, Redis memory per token with and
// without the index, and, with BLINDGATE_BENCH_SEARCH_FALLBACK=1, the same
// searches without the index (the path of merchants not reindexed yet).
// BENCHMARKS.md ("Back-office search") has the figures and how they scale.
func BenchmarkSearchAtScale(b *testing.B) {
	n := envInt(b, "BLINDGATE_BENCH_SEARCH_TOKENS", 20000)
	nm := envInt(b, "BLINDGATE_BENCH_SEARCH_MERCHANTS", 100)
	srv := testenv.StartRedisServer(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 16})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	s := NewRedis(rdb, "bg")

	ds := newDataSet(n, nm)
	empty := usedMemory(b, rdb)
	start := time.Now()
	ds.load(b, s)
	loadTook := time.Since(start)
	full := usedMemory(b, rdb)
	b.Logf("loaded %d tokens of %d merchants in %s (%.0f puts/s); largest merchant %s has %d",
		n, nm, loadTook.Round(time.Second), float64(n)/loadTook.Seconds(), ds.merchants[0], ds.perMerchant[0])

	kinds := searchKinds(ds)
	lat := make([][]time.Duration, len(kinds))
	rows := make([]int, len(kinds))
	rng := rand.New(rand.NewPCG(7, 7))
	i := 0
	for b.Loop() {
		k := i % len(kinds)
		i++
		q := kinds[k].query(rng)
		t0 := time.Now()
		found, err := s.Search(ctx, q)
		lat[k] = append(lat[k], time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		rows[k] += len(found)
	}
	b.StopTimer()
	var all []time.Duration
	var table strings.Builder
	fmt.Fprintf(&table, "\n| search | n | rows (mean) | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n")
	for k, kd := range kinds {
		if len(lat[k]) == 0 {
			continue
		}
		all = append(all, lat[k]...)
		fmt.Fprintf(&table, "| %s | %d | %.0f | %.2f | %.2f | %.2f |\n", kd.name, len(lat[k]), float64(rows[k])/float64(len(lat[k])),
			ms(pct(lat[k], 50)), ms(pct(lat[k], 99)), ms(pct(lat[k], 100)))
	}
	fmt.Fprintf(&table, "| all | %d | | %.2f | %.2f | %.2f |\n", len(all), ms(pct(all, 50)), ms(pct(all, 99)), ms(pct(all, 100)))
	b.Log(table.String())
	b.ReportMetric(ms(pct(all, 50)), "p50-ms")
	b.ReportMetric(ms(pct(all, 99)), "p99-ms")
	b.Log(costTable(b, s, rdb, kinds))

	if os.Getenv("BLINDGATE_BENCH_SEARCH_FALLBACK") == "1" {
		fallback(b, s, ds, kinds)
	}

	// Memory: each list kind's share (MEMORY USAGE), then the whole index's
	// (its keys deleted).
	b.Log(indexMemory(b, rdb, n))
	keys, ixKeys := dropIndexKeys(b, rdb)
	bare := usedMemory(b, rdb)
	per := float64(full-empty) / float64(n)
	ix := float64(full-bare) / float64(n)
	b.Logf("redis used_memory: %d bytes empty, %d with %d tokens (%.0f bytes/token), %d without the index (%d of %d keys were the index's): index %.0f bytes/token (%.0f%%)",
		empty, full, n, per, bare, ixKeys, keys, ix, 100*ix/per)
	b.ReportMetric(per, "bytes/token")
	b.ReportMetric(ix, "index-bytes/token")

	// The index gone, the store is one written before it: time the
	// reindex that builds it again, unpaced.
	t0 := time.Now()
	p, err := Reindex(ctx, s, ReindexOptions{})
	if err != nil || p.Listed != n {
		b.Fatalf("reindex: %+v %v", p, err)
	}
	took := time.Since(t0)
	b.Logf("reindex of %d tokens unpaced: %s (%.0f tokens/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
}

// costTable measures what each kind costs whatever else runs on the host:
// round trips to Redis and Redis's own time (INFO commandstats), over 20
// searches of each kind run one after the other.
func costTable(b *testing.B, s *Redis, rdb *redis.Client, kinds []searchKind) string {
	ctx := context.Background()
	trips := testenv.CountTrips(rdb)
	rng := rand.New(rand.NewPCG(7, 9))
	var t strings.Builder
	fmt.Fprintf(&t, "\ncost per search (20 of each, in a row):\n| search | round trips | Redis in commands µs | Redis CPU µs | client CPU µs |\n|---|---|---|---|---|\n")
	for _, kd := range kinds {
		const n = 20
		before, cpu0, own0 := commandTime(b, rdb), redisCPU(b, rdb), testenv.CPUTime()
		trips.Store(0)
		for range n {
			if _, err := s.Search(ctx, kd.query(rng)); err != nil {
				b.Fatal(err)
			}
		}
		own := testenv.CPUTime() - own0
		took := trips.Load()
		spent, cpu := commandTime(b, rdb)-before, redisCPU(b, rdb)-cpu0
		fmt.Fprintf(&t, "| %s | %.1f | %.0f | %.0f | %.0f |\n", kd.name, float64(took)/n, float64(spent)/n,
			float64(cpu.Microseconds())/n, float64(own.Microseconds())/n)
	}
	return t.String()
}

// redisCPU is the CPU time of Redis's main thread so far (INFO cpu), which,
// unlike the time in commands, does not grow when the host makes Redis wait.
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user_main_thread" || k == "used_cpu_sys_main_thread") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// commandTime is Redis's total time in commands so far, µs, but INFO's.
func commandTime(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") || strings.HasPrefix(line, "cmdstat_info:") {
			continue
		}
		for _, f := range strings.Split(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// fallback times a few kinds once with every merchant's index marked
// incomplete: the search as it was before the index.
func fallback(b *testing.B, s *Redis, ds *dataSet, kinds []searchKind) {
	ctx := context.Background()
	for _, m := range ds.merchants {
		if err := s.rdb.Del(ctx, s.readyKey(m)).Err(); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var table strings.Builder
	fmt.Fprintf(&table, "\nwithout the index (once each: the platform ones read every token):\n| search | ms |\n|---|---|\n")
	for _, kd := range kinds {
		switch kd.name {
		case "last 4, no match", "brand jcb (4%)", "no filter (newest)",
			"largest merchant: last 4", "largest merchant: last 4, no match", "largest merchant: BIN, first 6":
		default:
			continue
		}
		t0 := time.Now()
		if _, err := s.Search(ctx, kd.query(rng)); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&table, "| %s | %.1f |\n", kd.name, ms(time.Since(t0)))
	}
	b.Log(table.String())
	for _, m := range ds.merchants {
		if err := s.markIndexed(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// searchKind is one search of the mix.
type searchKind struct {
	name  string
	query func(*rand.Rand) Query
}

// searchKinds are what support does: by last 4, BIN, brand, dates and
// their combinations, across every merchant (platform operator) and
// within the largest merchant (its operator), with the worst cases: a last
// 4 nobody has, two large lists that do not intersect.
func searchKinds(ds *dataSet) []searchKind {
	last4 := func(r *rand.Rand) string { return fmt.Sprintf("%04d", 1+r.IntN(9999)) }
	bin := func(r *rand.Rand) string { return ds.bins[ds.pickBIN(r)] }
	day := func(r *rand.Rand) time.Time { return ds.end.AddDate(0, 0, -1-r.IntN(364)).Truncate(24 * time.Hour) }
	big := ds.merchants[0]
	top := func(first byte) string { // the most popular BIN of a brand (the pool is in popularity order)
		for _, x := range ds.bins {
			if x[0] == first {
				return x[:6]
			}
		}
		return ""
	}
	topVisa, topMC := top('4'), top('5')
	kinds := []searchKind{
		{"last 4", func(r *rand.Rand) Query { return Query{Last4: last4(r)} }},
		{"last 4, no match", func(*rand.Rand) Query { return Query{Last4: "0000"} }},
		{"BIN (8 or 6 digits, as stored)", func(r *rand.Rand) Query { return Query{BIN: bin(r)} }},
		{"BIN, first 6", func(r *rand.Rand) Query { return Query{BIN: bin(r)[:6]} }},
		{"BIN prefix, 2 digits", func(r *rand.Rand) Query { return Query{BIN: bin(r)[:2]} }},
		{"brand visa", func(*rand.Rand) Query { return Query{Brand: "visa"} }},
		{"brand jcb (4%)", func(*rand.Rand) Query { return Query{Brand: "jcb"} }},
		{"one day", func(r *rand.Rand) Query { d := day(r); return Query{From: d, To: d.AddDate(0, 0, 1)} }},
		{"last 4 + brand", func(r *rand.Rand) Query { return Query{Last4: last4(r), Brand: "visa"} }},
		{"BIN + one week", func(r *rand.Rand) Query { d := day(r); return Query{BIN: bin(r), From: d.AddDate(0, 0, -7), To: d} }},
		{"amex + top Visa BIN (none)", func(*rand.Rand) Query { return Query{Brand: "amex", BIN: topVisa} }},
		{"visa + top Mastercard BIN (0.2% of it)", func(*rand.Rand) Query { return Query{Brand: "visa", BIN: topMC} }},
		{"no filter (newest)", func(*rand.Rand) Query { return Query{} }},
	}
	n := len(kinds)
	for _, k := range kinds[:n] {
		if k.name == "no filter (newest)" || k.name == "one day" {
			continue
		}
		q := k.query
		kinds = append(kinds, searchKind{"largest merchant: " + k.name, func(r *rand.Rand) Query {
			x := q(r)
			x.MerchantID = big
			return x
		}})
	}
	for i := range kinds {
		q := kinds[i].query
		kinds[i].query = func(r *rand.Rand) Query { x := q(r); x.Limit = 100; return x } // the back office's page
	}
	return kinds
}

// dataSet generates tokens reproducibly from their index.
type dataSet struct {
	n           int
	merchants   []string
	cumM        []float64 // cumulative merchant weights
	perMerchant []int
	bins        []string
	cumB        []float64
	end         time.Time
	jwe         string
}

func newDataSet(n, nm int) *dataSet {
	ds := &dataSet{n: n, end: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), perMerchant: make([]int, nm)}
	ds.cumM = zipf(nm, 0.8)
	for i := range nm {
		ds.merchants = append(ds.merchants, fmt.Sprintf("m_bench%03d", i))
	}
	ds.cumB = zipf(3000, 0.7)
	r := rand.New(rand.NewPCG(1, 2))
	firsts := []string{"4", "4", "4", "4", "4", "4", "4", "4", "4", "4", "4", "5", "5", "5", "5", "5", "5", "37", "37", "6", "35"}
	seen := map[string]bool{}
	for len(ds.bins) < 3000 {
		f := firsts[r.IntN(len(firsts))]
		digits := 8
		if r.IntN(10) < 4 {
			digits = 6
		}
		b := f + fmt.Sprintf("%0*d", digits-len(f), r.IntN(int(math.Pow10(digits-len(f)))))
		if !seen[b[:6]] {
			seen[b[:6]] = true
			ds.bins = append(ds.bins, b)
		}
	}
	// A ciphertext of 600 base64url characters in 5 parts.
	ds.jwe = "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00ifQ." + strings.Repeat("k", 54) + "." +
		strings.Repeat("i", 16) + "." + strings.Repeat("c", 600-55-54-16-22-4) + "." + strings.Repeat("t", 22)
	return ds
}

// zipf returns the cumulative weights of 1/k^s, k = 1..n, normalised.
func zipf(n int, s float64) []float64 {
	out := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		out[k] = sum
	}
	for k := range out {
		out[k] /= sum
	}
	return out
}

func pickCum(cum []float64, r *rand.Rand) int {
	i, _ := slices.BinarySearch(cum, r.Float64())
	return min(i, len(cum)-1)
}

func (ds *dataSet) pickBIN(r *rand.Rand) int { return pickCum(ds.cumB, r) }

func (ds *dataSet) token(i int) Token {
	r := rand.New(rand.NewPCG(uint64(i), 99))
	m := pickCum(ds.cumM, r)
	bin := ds.bins[ds.pickBIN(r)]
	brand := map[byte]string{'4': "visa", '5': "mastercard", '6': "discover"}[bin[0]]
	switch bin[:2] {
	case "37":
		brand = "amex"
	case "35":
		brand = "jcb"
	}
	if brand == "mastercard" && r.IntN(500) == 0 {
		brand = "visa" // an oddity the key service's table could yield: two long lists that barely meet
	}
	var raw [16]byte
	for j := range raw {
		raw[j] = byte(r.Uint32())
	}
	id := IDPrefix + idEncoding.EncodeToString(raw[:])
	return Token{
		ID: id, MerchantID: ds.merchants[m], SessionID: "cs_" + id[4:], JWE: ds.jwe, Kid: "kek-2026-01",
		Brand: brand, BIN: bin, Last4: fmt.Sprintf("%04d", 1+r.IntN(9999)), ExpMonth: 1 + r.IntN(12), ExpYear: 2027 + r.IntN(5),
		Fingerprint: "fpm_" + strings.Repeat("f", 11) + id[4:],
		CreatedAt:   ds.end.Add(-time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))),
		Binding:     "bnd_" + id[4:],
	}
}

// idEncoding is randid's: lower-case base32 without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// load writes the data set through Put with a few writers.
func (ds *dataSet) load(b *testing.B, s *Redis) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	counts := make([]int, len(ds.merchants))
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]int, len(ds.merchants))
			for {
				i := int(next.Add(1)) - 1
				if i >= ds.n {
					break
				}
				t := ds.token(i)
				if _, _, err := s.Put(context.Background(), t, "", 0, ""); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("token %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				local[slices.Index(ds.merchants, t.MerchantID)]++
			}
			mu.Lock()
			for i, c := range local {
				counts[i] += c
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	ds.perMerchant = counts
}

// indexMemory sums MEMORY USAGE (every element counted) of the index's
// lists by kind, and counts their encodings.
func indexMemory(b *testing.B, rdb *redis.Client, n int) string {
	ctx := context.Background()
	type kind struct {
		keys, bytes, entries int64
		enc                  map[string]int
	}
	kinds := map[string]*kind{}
	var cur uint64
	for {
		keys, next, err := rdb.Scan(ctx, cur, "*}:ix:*", 2000).Result()
		if err != nil {
			b.Fatal(err)
		}
		pipe := rdb.Pipeline()
		mem := make([]*redis.IntCmd, len(keys))
		card := make([]*redis.IntCmd, len(keys))
		enc := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			mem[i] = pipe.MemoryUsage(ctx, k, 0)
			card[i] = pipe.ZCard(ctx, k)
			enc[i] = pipe.ObjectEncoding(ctx, k)
		}
		_, _ = pipe.Exec(ctx) // the ready marks are strings: ZCARD fails on them
		for i, k := range keys {
			f := k[strings.Index(k, "}:ix:")+5:]
			f, _, _ = strings.Cut(f, ":")
			kd := kinds[f]
			if kd == nil {
				kd = &kind{enc: map[string]int{}}
				kinds[f] = kd
			}
			kd.keys++
			kd.bytes += mem[i].Val()
			kd.entries += card[i].Val()
			kd.enc[enc[i].Val()]++
		}
		if next == 0 {
			break
		}
		cur = next
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\nindex memory by list kind (MEMORY USAGE, all elements):\n| lists | keys | entries | bytes/token | bytes/entry | encodings |\n|---|---|---|---|---|---|\n")
	names := slices.Sorted(maps.Keys(kinds))
	var total int64
	for _, f := range names {
		kd := kinds[f]
		total += kd.bytes
		per := 0.0
		if kd.entries > 0 {
			per = float64(kd.bytes) / float64(kd.entries)
		}
		fmt.Fprintf(&t, "| %s | %d | %d | %.0f | %.0f | %v |\n", f, kd.keys, kd.entries, float64(kd.bytes)/float64(n), per, kd.enc)
	}
	fmt.Fprintf(&t, "| all | | | %.0f | | |\n", float64(total)/float64(n))
	return t.String()
}

// dropIndexKeys deletes the search index's keys and counts them and all keys.
func dropIndexKeys(b *testing.B, rdb *redis.Client) (all, ix int) {
	ctx := context.Background()
	var cur uint64
	for {
		keys, next, err := rdb.Scan(ctx, cur, "*", 5000).Result()
		if err != nil {
			b.Fatal(err)
		}
		all += len(keys)
		var del []string
		for _, k := range keys {
			if strings.Contains(k, "}:ix:") {
				del = append(del, k)
			}
		}
		if len(del) > 0 {
			if err := rdb.Del(ctx, del...).Err(); err != nil {
				b.Fatal(err)
			}
			ix += len(del)
		}
		if next == 0 {
			return all, ix
		}
		cur = next
	}
}

func usedMemory(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory")
	return 0
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
