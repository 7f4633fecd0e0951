package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// The gateways of a replicated stack believe X-Forwarded-For from Docker's
// bridge addresses, where a published port's connections come from: the
// test plays the balancer in front of them and names each shopper.
var trustDockerProxy = []string{"-proxy-header", "X-Forwarded-For", "-trusted-proxies", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8"}

// Limits of TestReplicas: low enough that a doubled limit shows.
const (
	replicaSubmitPerIP     = 10 // per minute; burst 5 (ingest: rate/2)
	replicaSubmitIPBurst   = replicaSubmitPerIP / 2
	replicaSessionBurst    = 3 // ingest.DefaultLimits: 6 per minute, burst 3
	replicaSessionPerMin   = 6 //
	replicaRevealPerMinute = 2 // per operator, -reveal-per-minute
)

// TestReplicas runs two gateways and two key services on a Redis Cluster
// of three masters, the key services sharing one keyring volume: what a
// deployment past one machine looks like, at the smallest size that shows
// it. Checkouts go through both gateways in Chromium and by API (each call
// of a payment to the next gateway); the limits hold across replicas (a
// shopper alternating gateways gets no more submissions, an operator no
// more reveals); a signed request used at one key service is refused as a
// replay by the other; a rotation done once is served by both; an
// operator's login works on the other gateway. Last, one key service and
// one gateway are killed (SIGKILL) under load: no acknowledged token is
// lost, no request hangs, the gateways move to the surviving key service
// and the clients to the surviving gateway. One stack, subtests in order.
func TestReplicas(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		Redis: redisCluster(3), KeyServices: 2, Gateways: 2,
		KeyServiceArgs: []string{"-reveal-per-minute", strconv.Itoa(replicaRevealPerMinute)},
		GatewayArgs: append([]string{
			"-jwks-refresh", "2s", "-submit-per-ip", strconv.Itoa(replicaSubmitPerIP), "-rewrap-interval", "0",
		}, trustDockerProxy...),
		Operators: []operatorSpec{{"remy", "revealer"}},
	})
	rr := newRoundRobin(s)
	var paid []payment // acknowledged by API, for later subtests

	t.Run("browser/checkout-through-each-gateway", func(t *testing.T) {
		tab := newBrowser(t, "replicas-checkout")
		sri := s.embedSRI(t)
		for i := range s.gateways {
			// The merchant opened the session on the other gateway; the
			// page, its iframe and the submission use this one.
			gw, other := s.via(i), s.via(1-i)
			sid := other.mustSession(t)
			s.Page.setGateway(gw.GatewayURL, sri)
			frame := gw.checkoutFrame(t, tab, sid)
			c := brandCards[i]
			typeCard(t, frame, c)
			st := pageResult(t, tab)
			if st.Error != "" || !strings.HasPrefix(st.Token, "tok_") {
				t.Fatalf("gateway %d: merchant page: token %q, error %q", i+1, st.Token, st.Error)
			}
			if !receivedByPostMessage(st, gw.GatewayURL) {
				t.Errorf("gateway %d: the token did not arrive by postMessage from its iframe", i+1)
			}
			for j := range s.gateways {
				if v := s.via(j).token(t, st.Token); v.Last4 != c.Last4 || v.Brand != c.Brand {
					t.Errorf("token %s through gateway %d: %+v, want %s …%s", st.Token, j+1, v, c.Brand, c.Last4)
				}
			}
		}
		s.Page.setGateway(s.GatewayURL, sri)
	})

	t.Run("api/each-call-to-the-next-gateway", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range 4 {
			p, err := rr.pay(ctx, brandCards[i+2], shopperIP())
			if err != nil {
				t.Fatalf("payment %d: %v", i+1, err)
			}
			paid = append(paid, p)
		}
		lists := make([][]string, len(s.gateways))
		for j := range s.gateways {
			for _, v := range s.via(j).tokens(t) {
				lists[j] = append(lists[j], v.ID)
			}
			slices.Sort(lists[j])
			for _, p := range paid {
				if !slices.Contains(lists[j], p.Token) {
					t.Errorf("token %s is not listed by gateway %d", p.Token, j+1)
				}
			}
		}
		if !slices.Equal(lists[0], lists[1]) {
			t.Errorf("the gateways list different tokens: %d and %d", len(lists[0]), len(lists[1]))
		}
	})

	t.Run("429/submit-limit-per-session-not-doubled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sid, err := rr.session(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		key, err := rr.key(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A card the key service refuses (Luhn): the session stays open and
		// every submission is counted. Each from its own address, so only
		// the session's limit is in play; twice its burst, alternating.
		start := time.Now()
		passed, limited := limitRun(t, 2*replicaSessionBurst, func(i int) error {
			_, _, err := rr.submit(ctx, i%2, sid, shopperIP(), "4242424242424241", key)
			if err != nil && !isCode(err, http.StatusUnprocessableEntity, "card_invalid") && !isStatus(err, http.StatusTooManyRequests) {
				t.Fatalf("submission %d: %v, want 422 card_invalid or 429", i+1, err)
			}
			return err
		})
		checkLimit(t, "per session", passed, limited, replicaSessionBurst, replicaSessionPerMin, time.Since(start))
	})

	t.Run("429/submit-limit-per-ip-not-doubled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		n := 2*replicaSubmitIPBurst + 2
		sids := make([]string, n)
		for i := range sids {
			var err error
			if sids[i], err = rr.session(ctx, -1); err != nil {
				t.Fatal(err)
			}
		}
		key, err := rr.key(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		const ip = "203.0.113.77"
		start := time.Now()
		passed, limited := limitRun(t, n, func(i int) error {
			_, _, err := rr.submit(ctx, i%2, sids[i], ip, brandCards[0].PAN, key)
			if err != nil && !isStatus(err, http.StatusTooManyRequests) {
				t.Fatalf("submission %d: %v, want a token or 429", i+1, err)
			}
			return err
		})
		checkLimit(t, "per IP", passed, limited, replicaSubmitIPBurst, replicaSubmitPerIP, time.Since(start))
	})

	t.Run("409/replayed-signed-request-refused-by-the-other-keyservice", func(t *testing.T) {
		signer := *s.Signers["gateway"]
		signer.TTL = wire.MaxTTL // two probe containers must fit in its lifetime
		// Authenticated, then refused for its content: no card needed.
		body := `{"jwe":"e2e.not.a.card.jwe","session":"cs_e2e"}`
		sign := func() string {
			auth, err := signer.Authorization(http.MethodPost, ksURL+wire.PathInspect, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			return auth
		}
		send := func(auth string, n int) (int, string) {
			r := probeArgs(t, []string{"-timeout", "10s", "-method", "POST", "-header", "Content-Type: application/json",
				"-header", "Authorization: " + auth, "-body", body, ksURLs(2)[n-1] + wire.PathInspect}, s.Net)
			if !r.Reached {
				t.Fatalf("key service %d not reached from the key zone: %s", n, r.Output)
			}
			var eb wire.ErrorBody
			_ = json.Unmarshal([]byte(r.Body), &eb)
			return r.Status, eb.Error.Code
		}
		// Control: a request signed for the first key service's URL is
		// authenticated by the second (both accept both URLs as htu), so
		// the refusal below is the replay and nothing else.
		if st, code := send(sign(), 2); st != http.StatusBadRequest {
			t.Fatalf("fresh request at key service 2: %d %s, want 400 (authenticated, then refused for the bad JWE)", st, code)
		}
		auth := sign()
		if st, code := send(auth, 1); st != http.StatusBadRequest {
			t.Fatalf("first use at key service 1: %d %s, want 400", st, code)
		}
		if st, code := send(auth, 2); st != http.StatusConflict || code != "replay" {
			t.Errorf("the same request at key service 2: %d %s, want 409 replay", st, code)
		}
	})

	var reveals []revealRecord
	t.Run("operator/login-on-one-gateway-reveals-on-the-other", func(t *testing.T) {
		if len(paid) < replicaRevealPerMinute+1 {
			t.Fatal("no payments to reveal")
		}
		bo := s.via(0).boLogin(t, "remy")
		other := *bo
		other.base = s.gateways[1].BO // the same cookies (host localhost): one session in Redis
		clients := []*boClient{&other, bo}
		for i := range replicaRevealPerMinute {
			p := paid[i]
			reason := fmt.Sprintf("E2E replicas: reveal %d through gateway %d", i+1, 2-i%2)
			st, pan := clients[i%2].reveal(t, p.Token, reason)
			if st != http.StatusOK || pan != p.Card.PAN {
				t.Fatalf("reveal %d through gateway %d: HTTP %d, number matches: %v", i+1, 2-i%2, st, pan == p.Card.PAN)
			}
			reveals = append(reveals, revealRecord{Token: p.Token, Actor: bo.op.ID, Reason: reason})
		}
		// The per-operator limit is counted in Redis: whichever gateway
		// and key service serve the next reveal, it is refused.
		for i, c := range clients {
			if st, _ := c.reveal(t, paid[replicaRevealPerMinute].Token, "E2E replicas: one reveal past the limit"); st != http.StatusTooManyRequests {
				t.Errorf("reveal past the limit through gateway %d: HTTP %d, want 429", 2-i, st)
			}
		}
	})

	t.Run("rotation/done-once-seen-by-both-keyservices", func(t *testing.T) {
		before := s.publicKeys(t)[0].Kid
		out := s.ksAdmin(t, "keys", "rotate", "-master-key", devMasterKey)
		newKid := firstMatch(t, out, `new active key (\S+)`)
		if newKid == before {
			t.Fatalf("rotation kept kid %s", newKid)
		}
		var newKey jose.PublicKey
		for n := 1; n <= 2; n++ {
			eventually(t, 20*time.Second, fmt.Sprintf("key service %d publishes %s", n, newKid), func() (bool, string) {
				r := probe(t, ksURLs(2)[n-1]+wire.PathJWKS, s.Net)
				keys, err := jose.ParseJWKS([]byte(r.Body))
				if err != nil {
					return false, r.Output
				}
				for _, k := range keys {
					if k.Kid == newKid {
						newKey = k
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d keys", len(keys))
			})
		}
		// Each key service opens a card encrypted to the new version.
		for n := 1; n <= 2; n++ {
			sid := "cs_e2erotation" + strconv.Itoa(n)
			pt, _ := json.Marshal(map[string]any{"pan": brandCards[1].PAN, "exp_month": 12, "exp_year": expYear(), "iat": time.Now().Unix()})
			jwe, err := jose.Encrypt(pt, newKey.Key, newKey.Kid, map[string]string{jose.HeaderSessionID: sid})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(wire.InspectRequest{JWE: string(jwe), Session: sid, Merchant: s.MerchantID})
			auth, err := s.Signers["gateway"].Authorization(http.MethodPost, ksURLs(2)[n-1]+wire.PathInspect, body)
			if err != nil {
				t.Fatal(err)
			}
			r := probeArgs(t, []string{"-timeout", "10s", "-method", "POST", "-header", "Content-Type: application/json",
				"-header", "Authorization: " + auth, "-body", string(body), ksURLs(2)[n-1] + wire.PathInspect}, s.Net)
			var got wire.InspectResponse
			_ = json.Unmarshal([]byte(r.Body), &got)
			if r.Status != http.StatusOK || got.Kid != newKid || got.Last4 != brandCards[1].Last4 {
				t.Errorf("key service %d, inspect under %s: %d %s", n, newKid, r.Status, r.Body)
			}
		}
		// And the shoppers move to it through either gateway (each
		// refreshes the public keys every 2 s).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range s.gateways {
			eventually(t, 20*time.Second, fmt.Sprintf("gateway %d hands out %s", i+1, newKid), func() (bool, string) {
				k, err := rr.key(ctx, i)
				return err == nil && k.Kid == newKid, fmt.Sprintf("%s %v", k.Kid, err)
			})
		}
		for i := range 2 {
			p, err := rr.pay(ctx, brandCards[4], shopperIP())
			if err != nil || p.Kid != newKid {
				t.Errorf("payment %d after the rotation: kid %s, %v", i+1, p.Kid, err)
			}
		}
	})

	t.Run("kill/keyservice-then-gateway-under-load", func(t *testing.T) {
		testKillReplicas(t, s, rr)
	})

	t.Run("audit/each-chain-verifies-reveals-and-reloads-on-record", func(t *testing.T) {
		// Each replica keeps a chain of its own; together they hold every
		// reveal, and each recorded loading the rotated keyring.
		var events []audit.Event
		for n := 1; n <= 2; n++ {
			trail := s.auditTrailAt(t, ksReplicaAuditLog(n))
			if !slices.ContainsFunc(trail, func(e audit.Event) bool { return e.Event == audit.EventKeyringReload }) {
				t.Errorf("key service %d has no keyring.reload on record after the rotation", n)
			}
			events = append(events, trail...)
		}
		checkReveals(t, events, reveals)
	})

	calls, retries, longest, hung := rr.stats()
	t.Logf("round robin: %d calls, %d sent again to the other gateway, slowest answer %s", calls, retries, longest.Round(time.Millisecond))
	for _, h := range hung {
		t.Errorf("hung: %s", h)
	}
}

// limitRun makes n attempts and counts those a limiter refused (429) and
// those it let through (any other outcome).
func limitRun(t *testing.T, n int, attempt func(i int) error) (passed, limited int) {
	t.Helper()
	for i := range n {
		if err := attempt(i); isStatus(err, http.StatusTooManyRequests) {
			limited++
		} else {
			passed++
		}
	}
	return passed, limited
}

// checkLimit fails t if more attempts passed than one shared limit allows
// in the time they took (its burst, and what its rate refilled meanwhile):
// a limit counted per replica would let up to twice the burst through.
func checkLimit(t *testing.T, name string, passed, limited, burst, perMinute int, took time.Duration) {
	t.Helper()
	allowed := burst + int(took/(time.Minute/time.Duration(perMinute)))
	t.Logf("limit %s: %d passed, %d refused in %s (one shared limit allows %d; per replica it would be %d)",
		name, passed, limited, took.Round(100*time.Millisecond), allowed, 2*burst)
	if passed > allowed {
		t.Errorf("limit %s: %d submissions through two gateways passed, the shared limit allows %d", name, passed, allowed)
	}
	if limited == 0 {
		t.Errorf("limit %s: nothing refused", name)
	}
}

// testKillReplicas kills the first key service, then the first gateway,
// with SIGKILL while two shoppers pay through the round robin, then
// restarts both and checks what the load saw.
func testKillReplicas(t *testing.T, s *stack, rr *roundRobin) {
	l := rr.startLoad(4, 20*time.Millisecond)
	t.Cleanup(l.stop)
	waitPaid := func(n int, since time.Time, what string) {
		t.Helper()
		eventually(t, 90*time.Second, fmt.Sprintf("%d payments %s", n, what), func() (bool, string) {
			got, msg := l.okSince(since)
			return got >= n, msg
		})
	}
	waitPaid(5, time.Time{}, "before the kills")

	victims := []struct {
		name string
		c    testcontainers.Container
	}{
		{"keyservice", s.KeyServices[0]},
		{"gateway", s.gateways[0].C},
	}
	windows := make([]window, len(victims))
	killedAt := make([]time.Time, len(victims))
	for i, v := range victims {
		killedAt[i] = time.Now()
		sigkill(t, v.c)
		waitPaid(5, killedAt[i], "after the "+v.name+" was killed")
	}
	l.stop()
	end := time.Now()
	for i, v := range victims {
		to := end
		if i+1 < len(victims) {
			to = killedAt[i+1]
		}
		windows[i] = l.window(killedAt[i], to)
		t.Logf("%s 1 of 2 SIGKILLed: %s", v.name, windows[i].since(killedAt[i]))
	}

	// Back up, they rejoin: each gateway pays on its own again.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, v := range victims {
		if err := v.c.Start(ctx); err != nil {
			t.Fatalf("restart %s after SIGKILL: %v\n%s", v.name, err, tail(containerLogs(v.c), 4000))
		}
	}
	eventually(t, 60*time.Second, "gateway 1 /readyz 200 after its restart", func() (bool, string) {
		st, b := get(t, s.gateways[0].URL+"/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})

	outcomes := l.results()
	var acked []payment
	var refused []error
	for _, o := range outcomes {
		if o.Err != nil {
			refused = append(refused, o.Err)
			continue
		}
		acked = append(acked, o.P)
	}
	t.Logf("load: %d payments acknowledged, %d refused", len(acked), len(refused))

	stored := map[string]bool{}
	for _, v := range s.via(1).tokens(t) {
		stored[v.ID] = true
	}
	t.Run("every-acknowledged-token-kept", func(t *testing.T) {
		for _, p := range acked {
			if !stored[p.Token] {
				t.Errorf("token %s was acknowledged and is gone after the kills", p.Token)
			}
		}
	})

	t.Run("every-token-on-record-at-a-gateway", func(t *testing.T) {
		created := map[string]bool{}
		for _, g := range s.gateways {
			for _, e := range containerAudit(t, g.C, gwAuditLog) {
				if e.Event == audit.EventTokenCreate && e.Outcome == audit.OutcomeSuccess {
					created[e.Resource] = true
				}
			}
		}
		for _, p := range acked {
			if !created[p.Token] {
				// The gateway syncs the record before it writes the token, so
				// a SIGKILL between the two leaves a record, never a token
				// without one.
				t.Errorf("token %s has no token.create record at either gateway", p.Token)
			}
		}
		for id := range stored {
			if !created[id] {
				t.Errorf("stored token %s has no token.create record at either gateway", id)
			}
		}
	})

	t.Run("refusals-were-clean", func(t *testing.T) {
		// With a replica of each left, a refusal is a 503 ("retry later")
		// or the busy answer to a submission retried at the survivor while
		// the killed gateway's claim on the session lasts; never a 4xx
		// verdict, a 500 or no answer at all.
		for _, err := range refused {
			var ae *apiError
			switch {
			case errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || isCode(err, http.StatusConflict, "session_busy")):
			default:
				t.Errorf("payment refused with %v, want 503 or 409 session_busy", err)
			}
		}
	})

	t.Run("both-rejoin", func(t *testing.T) {
		eventually(t, 30*time.Second, "key service 1 ready after its restart", func() (bool, string) {
			r := probe(t, ksURL+"/readyz", s.Net)
			return r.Status == http.StatusOK, r.Output
		})
		for i := range s.gateways {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			sid, err := rr.session(ctx, i)
			var key jose.PublicKey
			if err == nil {
				key, err = rr.key(ctx, i)
			}
			if err == nil {
				_, _, err = rr.submit(ctx, i, sid, shopperIP(), brandCards[3].PAN, key)
			}
			cancel()
			if err != nil {
				t.Errorf("payment through gateway %d after the restarts: %v", i+1, err)
			}
		}
	})
}
