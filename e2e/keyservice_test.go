package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestKeyServiceAlone runs the key service image with the Redis image on an
// ordinary network with both ports published on 127.0.0.1: what the image
// serves, and that its state in Redis outlives a Redis restart. One zone is
// shared by the subtests, which run in order.
func TestKeyServiceAlone(t *testing.T) {
	t.Parallel()
	z := newKeyZone(t, zoneOptions{
		Exposed: true,
		Clients: []clientSpec{{ID: "e2e-gateway", Ops: []string{wire.OpInspect}}},
	})
	base := loopbackURL(t, z.KeyService, ksPort)

	t.Run("200/healthz-and-readyz", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if st, body := get(t, base+path); st != http.StatusOK {
				t.Errorf("GET %s = %d %s", path, st, body)
			}
		}
	})

	t.Run("200/jwks-public-enc-keys-only", func(t *testing.T) {
		st, body := get(t, base+wire.PathJWKS)
		if st != http.StatusOK {
			t.Fatalf("GET jwks = %d %s", st, body)
		}
		checkJWKS(t, body)
	})

	t.Run("401/unknown-or-revoked-client-key", func(t *testing.T) {
		testUnknownAndRevokedKeys(t, z, base)
	})

	t.Run("409/replay-cache-survives-redis-restart", func(t *testing.T) {
		testReplaySurvivesRedisRestart(t, z, base)
	})
}

// checkJWKS asserts a JWKS as Contract 1 publishes it: at least one key,
// each with kid, an accepted alg and use "enc", and no private member.
func checkJWKS(t *testing.T, body []byte) []string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("jwks is not JSON: %v", err)
	}
	if len(set.Keys) == 0 {
		t.Fatalf("jwks has no key: %s", body)
	}
	var kids []string
	for i, k := range set.Keys {
		kid, _ := k["kid"].(string)
		alg, _ := k["alg"].(string)
		if kid == "" || k["use"] != "enc" || !slices.Contains([]string{jose.AlgRSAOAEP256, jose.AlgECDHES}, alg) {
			t.Errorf("key %d: kid %q use %v alg %q", i, kid, k["use"], alg)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d (%s) publishes private member %q", i, kid, private)
			}
		}
		kids = append(kids, kid)
	}
	if _, err := jose.ParseJWKS(body); err != nil {
		t.Errorf("jose.ParseJWKS: %v", err)
	}
	return kids
}

// testReplaySurvivesRedisRestart signs one request, lets the key service
// record its jti in Redis, restarts Redis and replays the request: the
// replay must still be refused, because the jti came back from the AOF.
// While Redis is down the key service must fail closed.
func testReplaySurvivesRedisRestart(t *testing.T, z *keyZone, base string) {
	signer := *z.Signers["e2e-gateway"]
	signer.TTL = wire.MaxTTL // the restart must fit in the jti's lifetime
	url := base + wire.PathInspect
	// A well-formed request that passes authentication (which records the
	// jti) and is then refused for its content: no card data needed.
	body := []byte(`{"jwe":"e2e.not.a.card.jwe","session":"cs_e2e"}`)
	auth, err := signer.Authorization(http.MethodPost, ksURL+wire.PathInspect, body)
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Now()

	if st, code := post(t, url, auth, body); st != http.StatusBadRequest {
		t.Fatalf("first use: %d %s, want 400 (authenticated, then refused for the bad JWE)", st, code)
	}
	if st, code := post(t, url, auth, body); st != http.StatusConflict || code != "replay" {
		t.Fatalf("replay: %d %s, want 409 replay", st, code)
	}

	rdb := redisClient(t, z)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "e2e:aof-marker", "kept", 0).Err(); err != nil {
		t.Fatalf("redis set: %v", err)
	}
	_ = rdb.Close()

	stop := 10 * time.Second
	restartAt := time.Now()
	if err := z.Redis.Stop(ctx, &stop); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	// Fail closed: without its replay store the key service cannot know a
	// jti is fresh, so it must refuse rather than accept.
	eventually(t, 15*time.Second, "readyz 503 while Redis is down", func() (bool, string) {
		st, b := get(t, base+"/readyz")
		return st == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", st, b)
	})
	fresh, err := signer.Authorization(http.MethodPost, ksURL+wire.PathInspect, body)
	if err != nil {
		t.Fatal(err)
	}
	if st, code := post(t, url, fresh, body); st != http.StatusServiceUnavailable {
		t.Errorf("signed request with Redis down: %d %s, want 503", st, code)
	}

	if err := z.Redis.Start(ctx); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	rdb = redisClient(t, z) // the published port changes on restart
	defer rdb.Close()
	eventually(t, 20*time.Second, "Redis answers after restart", func() (bool, string) {
		err := rdb.Ping(ctx).Err()
		return err == nil, fmt.Sprint(err)
	})
	if v, err := rdb.Get(ctx, "e2e:aof-marker").Result(); err != nil || v != "kept" {
		t.Errorf("marker after restart: %q %v (AOF not replayed?)", v, err)
	}
	eventually(t, 20*time.Second, "readyz 200 after Redis restart", func() (bool, string) {
		st, b := get(t, base+"/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})
	t.Logf("Redis restart and key service recovery took %s", time.Since(restartAt).Round(100*time.Millisecond))

	if age := time.Since(signedAt); age > wire.MaxTTL-5*time.Second {
		t.Fatalf("restart took too long (%s): the jti may have expired, the replay check would prove nothing", age)
	}
	if st, code := post(t, url, auth, body); st != http.StatusConflict || code != "replay" {
		t.Errorf("replay after Redis restart: %d %s, want 409 replay (jti lost with the restart)", st, code)
	}
}

// testUnknownAndRevokedKeys checks who may sign: a key the allow-list never
// had, a stranger's key under an enrolled kid, and an enrolled key once
// revoked with `keyservice clients revoke` (picked up by the running
// service) are all refused with 401 before any work, and each refusal is
// in the audit trail. Each probe is a well-formed inspect that an
// authenticated caller gets a 400 for (the JWE is not a card).
//
// The trail is counted around each probe, not once at the end: waiting for
// the allow-list to pick up a change polls with requests that are refused
// too, and a total would count those for a probe whose refusal went
// unrecorded.
func testUnknownAndRevokedKeys(t *testing.T, z *keyZone, base string) {
	url := base + wire.PathInspect
	body := []byte(`{"jwe":"e2e.not.a.card.jwe","session":"cs_e2e"}`)
	send := func(s *client.Signer) (int, string) {
		t.Helper()
		auth, err := s.Authorization(http.MethodPost, ksURL+wire.PathInspect, body)
		if err != nil {
			t.Fatal(err)
		}
		return post(t, url, auth, body)
	}
	stranger, err := client.GenerateKey(client.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	known := z.Signers["e2e-gateway"]
	// denials are the trail's refusals of an inspect signature, by the
	// client the request claimed ("" for a kid the allow-list never had).
	denials := func(t *testing.T) map[string]int {
		t.Helper()
		n := map[string]int{}
		for _, e := range z.auditTrail(t) {
			if e.Event == audit.EventDenied && e.Outcome == audit.OutcomeDenied && e.Resource == "op:"+wire.OpInspect && e.Code == "unauthenticated" {
				n[e.Client]++
			}
		}
		return n
	}
	// probe runs one probe and requires exactly want new denials, by claimed
	// client, on record for it.
	probe := func(t *testing.T, want map[string]int, run func(t *testing.T)) {
		t.Helper()
		before := denials(t)
		run(t)
		after := denials(t)
		for _, c := range slices.Sorted(maps.Keys(mergeKeys(before, after, want))) {
			if got := after[c] - before[c]; got != want[c] {
				t.Errorf("denials claiming client %q: %d new on record, want %d", c, got, want[c])
			}
		}
	}

	t.Run("control/enrolled-key-authenticates", func(t *testing.T) {
		probe(t, nil, func(t *testing.T) {
			if st, code := send(known); st != http.StatusBadRequest {
				t.Fatalf("enrolled key: %d %s, want 400 (past authentication)", st, code)
			}
		})
	})
	t.Run("401/never-enrolled-key", func(t *testing.T) {
		// Neither kid is on the allow-list: the refusals name no client.
		probe(t, map[string]int{"": 2}, func(t *testing.T) {
			kid, _ := client.NewKid("e2e-gateway")
			s := &client.Signer{ClientID: "e2e-gateway", Kid: kid, Audience: ksAudience, Key: stranger}
			if st, code := send(s); st != http.StatusUnauthorized || code != "unauthenticated" {
				t.Errorf("unknown kid: %d %s, want 401 unauthenticated", st, code)
			}
			s = &client.Signer{ClientID: "e2e-intruder", Kid: kid, Audience: ksAudience, Key: stranger}
			if st, code := send(s); st != http.StatusUnauthorized || code != "unauthenticated" {
				t.Errorf("unknown client: %d %s, want 401 unauthenticated", st, code)
			}
		})
	})
	t.Run("401/stranger-key-under-enrolled-kid", func(t *testing.T) {
		probe(t, map[string]int{"e2e-gateway": 1}, func(t *testing.T) {
			s := *known
			s.Key = stranger
			if st, code := send(&s); st != http.StatusUnauthorized || code != "unauthenticated" {
				t.Errorf("forged signature: %d %s, want 401 unauthenticated", st, code)
			}
		})
	})
	t.Run("401/revoked-key", func(t *testing.T) {
		z.enroll(t, clientSpec{ID: "e2e-revoked", Ops: []string{wire.OpInspect}})
		s := z.Signers["e2e-revoked"]
		// The running service picks up allow-list changes within ~2 s.
		eventually(t, 15*time.Second, "the new client accepted", func() (bool, string) {
			st, code := send(s)
			return st == http.StatusBadRequest, fmt.Sprintf("%d %s", st, code)
		})
		out := z.admin(t, nil, "clients", "revoke", "-kid", s.Kid)
		if !strings.Contains(out, s.Kid) {
			t.Fatalf("revoke: %s", out)
		}
		eventually(t, 15*time.Second, "the revoked key refused", func() (bool, string) {
			st, code := send(s)
			return st == http.StatusUnauthorized && code == "unauthenticated", fmt.Sprintf("%d %s", st, code)
		})
		// The polls above are refused too; the probe is one request more,
		// once the revocation is in force, and its refusal names the client.
		probe(t, map[string]int{"e2e-revoked": 1}, func(t *testing.T) {
			if st, code := send(s); st != http.StatusUnauthorized || code != "unauthenticated" {
				t.Errorf("revoked key: %d %s, want 401 unauthenticated", st, code)
			}
		})
	})
}

// mergeKeys is the union of the maps' keys, as a set.
func mergeKeys(ms ...map[string]int) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// redisClient connects to the zone's Redis through its published port.
func redisClient(t *testing.T, z *keyZone) *redis.Client {
	t.Helper()
	u := loopbackURL(t, z.Redis, redisPort)
	return redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(u, "http://"), MaxRetries: -1, DialTimeout: time.Second})
}

// TestKeyZoneIsolation runs the production layout without the gateway and
// checks the zone boundary: the key service publishes no port, a container
// in the key zone (or in both zones, where the gateway sits) reaches it, and
// neither a container in the public zone nor the host (the browser's side)
// gets its answer, even with its container address in hand. Only addresses
// of this test's own containers are tried.
func TestKeyZoneIsolation(t *testing.T) {
	t.Parallel()
	tp := newTopology(t, zoneOptions{})

	for role, c := range map[string]testcontainers.Container{"keyservice": tp.KeyService, "redis": tp.Redis} {
		if p := publishedPorts(t, c); len(p) > 0 {
			t.Errorf("%s publishes ports in the production topology: %v", role, p)
		}
	}

	// Positive control first: without it, "unreachable" could mean "down".
	jwksURL := "http://" + ksAlias + ":8443" + wire.PathJWKS
	in := probe(t, jwksURL, tp.Net)
	if !in.Reached || in.Status != http.StatusOK {
		t.Fatalf("from the key zone: %s", in.Output)
	}
	kids := checkJWKS(t, []byte(in.Body))
	answeredByKeyService := func(body string) bool {
		for _, kid := range kids {
			if strings.Contains(body, kid) {
				return true
			}
		}
		return false
	}
	ips := containerIPs(t, tp.KeyService)

	t.Run("reached/from-both-zones", func(t *testing.T) {
		// Where the gateway runs: created on the public network, then joined to the key zone.
		r := probe(t, jwksURL, tp.Public, tp.Net)
		if !r.Reached || r.Status != http.StatusOK || !answeredByKeyService(r.Body) {
			t.Errorf("from both zones: %s", r.Output)
		}
	})

	t.Run("unreached/from-public-zone", func(t *testing.T) {
		if r := probe(t, jwksURL, tp.Public); r.Reached && answeredByKeyService(r.Body) {
			t.Errorf("public zone reached the key service by name: %s", r.Output)
		}
		for _, ip := range ips {
			if r := probe(t, "http://"+ip+":8443"+wire.PathJWKS, tp.Public); r.Reached && answeredByKeyService(r.Body) {
				t.Errorf("public zone reached the key service at %s: %s", ip, r.Output)
			}
		}
	})

	t.Run("unreached/from-host", func(t *testing.T) {
		// No proxy and a short timeout: an unroutable address would
		// otherwise hang; some other host answering is no failure.
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
		for _, ip := range ips {
			resp, err := hc.Get("http://" + ip + ":8443" + wire.PathJWKS)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if answeredByKeyService(string(b)) {
				t.Errorf("the host reached the key service at %s: %d %s", ip, resp.StatusCode, b)
			}
		}
	})

	t.Run("unreached/from-host-browser", func(t *testing.T) {
		browser := newBrowser(t, "keyservice-by-ip")
		for _, ip := range ips {
			text, err := pageText(browser, "http://"+ip+":8443"+wire.PathJWKS, 5*time.Second)
			if err == nil && answeredByKeyService(text) {
				t.Errorf("Chromium on the host loaded the key service's JWKS from %s", ip)
			}
		}
	})
}

// get is a GET that fails t only on a transport error.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// post sends a signed JSON request and returns the status and the error
// code of the answer ("" for a success or a body without one).
func post(t *testing.T, url, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "transport: " + err.Error()
	}
	defer resp.Body.Close()
	var eb wire.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Error.Code
}

// eventually polls cond until it holds or d passes, then fails t with the
// last observation.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, d, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
