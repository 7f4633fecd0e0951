package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
	"go.yaml.in/yaml/v3"

	"github.com/blindgate/blindgate/deploy/images"
	"github.com/blindgate/blindgate/internal/testenv"
)

// composeService is the part of a docker-compose.yml service the suite
// compares with its own topology.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Networks    []string          `yaml:"networks"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		Internal   bool              `yaml:"internal"`
		DriverOpts map[string]string `yaml:"driver_opts"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestCompose keeps docker-compose.yml from rotting: its layout must be the
// one this suite proves (same zones, names, images, Redis command, sealed
// key service, only the gateway and the shop published), and the first-run
// steps it documents must work: with the images this run built, compose
// brings the stack up, the key service stays sealed until unsealed, and a
// shopper pays on the demo shop in Chromium.
func TestCompose(t *testing.T) {
	t.Parallel()
	root, err := images.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docker-compose.yml")

	t.Run("matches-the-suite-topology", func(t *testing.T) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var cf composeFile
		if err := yaml.Unmarshal(raw, &cf); err != nil {
			t.Fatalf("docker-compose.yml: %v", err)
		}
		checkComposeTopology(t, cf)
	})

	t.Run("first-run-steps-then-pay-in-browser", func(t *testing.T) {
		testenv.SkipShort(t, "e2e")
		testComposeUp(t, path)
	})
}

func checkComposeTopology(t *testing.T, cf composeFile) {
	t.Helper()
	var names []string
	for n := range cf.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"egress", "gateway", "gateway-admin", ksAlias, "keyservice-admin", redisAlias, "shop"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	// The suite's zones: an internal key zone the host has no address on
	// (newNetwork), and a public one.
	kz, ok := cf.Networks["keyzone"]
	if !ok || !kz.Internal || kz.DriverOpts["com.docker.network.bridge.inhibit_ipv4"] != "true" {
		t.Errorf("network keyzone: %+v, want internal with inhibit_ipv4 (as newNetwork)", kz)
	}
	if pub, ok := cf.Networks["public"]; !ok || pub.Internal {
		t.Errorf("network public: %+v", pub)
	}
	// The egress proxy's outside network: a route out, which the key
	// service itself never joins.
	if eg, ok := cf.Networks["egress"]; !ok || eg.Internal {
		t.Errorf("network egress: %+v, want an ordinary network", eg)
	}
	if ks := cf.Services[ksAlias]; !slices.Contains(ks.Command, "-egress-proxy") || !slices.Contains(ks.Command, "http://egress:3128") {
		t.Errorf("keyservice command %v: want -egress-proxy http://egress:3128", ks.Command)
	}
	wantNets := map[string][]string{
		redisAlias: {"keyzone"}, ksAlias: {"keyzone"}, "keyservice-admin": {"keyzone"}, "gateway-admin": {"keyzone"},
		gwAlias: {"keyzone", "public"}, "shop": {"public"}, "egress": {"egress", "keyzone"},
	}
	for name, svc := range cf.Services {
		nets := slices.Sorted(slices.Values(svc.Networks))
		if !slices.Equal(nets, wantNets[name]) {
			t.Errorf("%s on networks %v, want %v", name, nets, wantNets[name])
		}
		switch name {
		case gwAlias, "shop":
			if len(svc.Ports) != 1 || !strings.HasPrefix(svc.Ports[0], "127.0.0.1:") {
				t.Errorf("%s publishes %v, want one port on 127.0.0.1", name, svc.Ports)
			}
		default:
			if len(svc.Ports) > 0 {
				t.Errorf("%s publishes %v; only the gateway and the shop may", name, svc.Ports)
			}
		}
		if strings.HasSuffix(name, "-admin") && !slices.Equal(svc.Profiles, []string{"admin"}) {
			t.Errorf("%s: profiles %v, want [admin] (one-shot, never started by `up`)", name, svc.Profiles)
		}
	}
	// Images: configurable, defaulting to what `make images` tags.
	wantImage := map[string]string{
		redisAlias:         "${BLINDGATE_REDIS_IMAGE:-redis:7-alpine}",
		ksAlias:            "${BLINDGATE_KEYSERVICE_IMAGE:-" + images.DefaultTag(images.KeyService) + "}",
		"keyservice-admin": "${BLINDGATE_KEYSERVICE_IMAGE:-" + images.DefaultTag(images.KeyService) + "}",
		gwAlias:            "${BLINDGATE_GATEWAY_IMAGE:-" + images.DefaultTag(images.Gateway) + "}",
		"gateway-admin":    "${BLINDGATE_ADMIN_IMAGE:-" + images.DefaultTag(images.Admin) + "}",
		"shop":             "${BLINDGATE_SHOP_IMAGE:-" + images.DefaultTag(images.Shop) + "}",
		"egress":           "${BLINDGATE_EGRESS_IMAGE:-" + images.DefaultTag(images.Egress) + "}",
	}
	for name, want := range wantImage {
		if got := cf.Services[name].Image; got != want {
			t.Errorf("%s image %q, want %q", name, got, want)
		}
	}
	// Redis as the suite runs it (AOF in /data), on a volume.
	redis := cf.Services[redisAlias]
	if !slices.Equal(redis.Command, redisCmd()) || !slices.Contains(redis.Volumes, "redis-data:/data") {
		t.Errorf("redis: command %q volumes %q, want %q and redis-data:/data", redis.Command, redis.Volumes, redisCmd())
	}
	// The key service starts sealed: no master key, no dev auto-unseal.
	ks := cf.Services[ksAlias]
	if len(ks.Command) == 0 || ks.Command[0] != "serve" || slices.Contains(ks.Command, "-dev-auto-unseal") ||
		slices.Contains(ks.Command, "-master-key") || !containsPair(ks.Command, "-redis", redisAlias+":6379") ||
		!containsPair(ks.Command, "-public-url", ksURL) || slices.Contains(ks.Command, "-audience") {
		t.Errorf("keyservice command %q: want serve, sealed (no -dev-auto-unseal, no -master-key), -redis %s:6379, -public-url %s, its own audience (no -audience)", ks.Command, redisAlias, ksURL)
	}
	for _, name := range []string{ksAlias, "keyservice-admin"} {
		if !slices.Contains(cf.Services[name].Volumes, "keyservice-data:/var/lib/blindgate") {
			t.Errorf("%s volumes %q: want keyservice-data:/var/lib/blindgate", name, cf.Services[name].Volumes)
		}
	}
	gw := cf.Services[gwAlias]
	for k, want := range map[string]string{
		"BLINDGATE_GW_KEYSERVICE_URL": "http://" + ksAlias + ":8443", "BLINDGATE_GW_REDIS": redisAlias + ":6379", "BLINDGATE_GW_STORE": "redis",
		"BLINDGATE_GW_KEYSERVICE_AUDIENCE": "${BLINDGATE_KEYSERVICE_AUDIENCE:-}",
	} {
		if gw.Environment[k] != want {
			t.Errorf("gateway %s = %q, want %q", k, gw.Environment[k], want)
		}
	}
	if len(gw.Ports) == 1 && !strings.HasSuffix(gw.Ports[0], ":8080") {
		t.Errorf("gateway port %q, want container port 8080", gw.Ports[0])
	}
	for _, v := range []string{"redis-data", "keyservice-data", "gateway-data"} {
		if _, ok := cf.Volumes[v]; !ok {
			t.Errorf("volume %s is not declared", v)
		}
	}
}

func containsPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// composeCLI finds `docker compose` (v2) or `docker-compose` (Debian's v1).
func composeCLI(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	testenv.Missing(t, "no `docker compose` or `docker-compose` (apt-get install docker-compose)")
	return nil
}

// composeRun is one compose project for a test.
type composeRun struct {
	cli  []string
	file string
	dir  string // where it runs: the folder of file and its .env
	env  []string
}

// dotEnv is the .env beside the test's docker-compose.yml, written as the
// README's steps do (an example copied, then `echo NAME=value >> .env`).
type dotEnv struct {
	t    *testing.T
	path string
}

func (e *dotEnv) write(s string) {
	if err := os.WriteFile(e.path, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *dotEnv) add(line string) {
	b, err := os.ReadFile(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(string(b) + line + "\n")
}

// withoutBlindgateVars drops the caller's BLINDGATE_* variables, which would
// override the test's .env.
func withoutBlindgateVars(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "BLINDGATE_") })
}

// composeRoot is the module root, where .env.example lives.
func composeRoot(t *testing.T) string {
	t.Helper()
	root, err := images.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs compose with args (stdin optional) and returns its combined
// output; a failure fails t.
func (c *composeRun) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.try(stdin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", strings.Join(c.cli, " "), strings.Join(args, " "), err, tail([]byte(out), 4000))
	}
	return out
}

func (c *composeRun) try(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append(append(append([]string(nil), c.cli[1:]...), "-f", c.file), args...)
	cmd := exec.CommandContext(ctx, c.cli[0], full...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func testComposeUp(t *testing.T, file string) {
	refs := needImages(t, images.KeyService, images.Gateway, images.Admin, images.Shop, images.Redis, images.Egress)
	cli := composeCLI(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	project := "bge2e" + hex.EncodeToString(rnd[:])
	gwPort, shopPort := testenv.FreePort(t), testenv.FreePort(t)
	gateway, shop := fmt.Sprintf("http://127.0.0.1:%d", gwPort), fmt.Sprintf("http://localhost:%d", shopPort)
	// The documented layout: docker-compose.yml with its .env beside it, in
	// a folder of the test's own, so a developer's .env is never touched.
	dir := t.TempDir()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	env := &dotEnv{t: t, path: filepath.Join(dir, ".env")}
	c := &composeRun{cli: cli, file: file, dir: dir, env: append(withoutBlindgateVars(os.Environ()),
		"COMPOSE_PROJECT_NAME="+project,
		"BLINDGATE_REDIS_IMAGE="+refs[images.Redis],
		"BLINDGATE_KEYSERVICE_IMAGE="+refs[images.KeyService],
		"BLINDGATE_GATEWAY_IMAGE="+refs[images.Gateway],
		"BLINDGATE_ADMIN_IMAGE="+refs[images.Admin],
		"BLINDGATE_SHOP_IMAGE="+refs[images.Shop],
		"BLINDGATE_EGRESS_IMAGE="+refs[images.Egress],
		// 127.0.0.1 for the gateway, localhost for the shop: two sites, as
		// in production, so Chromium runs the checkout frame on its own.
		"BLINDGATE_GATEWAY_HOST=127.0.0.1",
	)}
	t.Cleanup(func() {
		logs, _ := c.try("", "logs", "--no-color")
		noCardsIn(t, "compose", []byte(logs))
		if t.Failed() {
			saveArtifact(t, "compose.log", []byte(logs))
		}
		if out, err := c.try("", "--profile", "admin", "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	start := time.Now()

	// The documented first-run steps, in order. 0: .env from the example,
	// with other ports than the defaults (as a user whose 8080 is taken
	// edits it): nothing else in the steps names a port.
	example, err := os.ReadFile(filepath.Join(composeRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	ports := strings.NewReplacer("BLINDGATE_GATEWAY_PORT=8080\n", fmt.Sprintf("BLINDGATE_GATEWAY_PORT=%d\n", gwPort),
		"BLINDGATE_SHOP_PORT=8081\n", fmt.Sprintf("BLINDGATE_SHOP_PORT=%d\n", shopPort)).Replace(string(example))
	if ports == string(example) {
		t.Fatalf(".env.example does not set BLINDGATE_GATEWAY_PORT=8080 and BLINDGATE_SHOP_PORT=8081:\n%s", example)
	}
	env.write(ports)
	c.run(t, "", "config", "-q")

	// keygen prints the enrolment to run, as the README has it; the test
	// runs it as printed.
	var enrol []string
	for _, id := range []string{"gateway", "backoffice"} {
		out := c.run(t, "", "run", "--rm", "-T", "gateway-admin", "keygen", "-id", id, "-out", id+".jwk", "-public-out", id+".pub.jwk")
		hint := firstMatch(t, out, `(?m)^  (docker compose run --rm keyservice-admin clients add .*)$`)
		want := map[string]string{"gateway": "inspect,rewrap", "backoffice": "reveal,audit"}[id]
		if hint != fmt.Sprintf("docker compose run --rm keyservice-admin clients add -id %s -ops %s -public-key /gateway/%s.pub.jwk", id, want, id) {
			t.Errorf("keygen -id %s hints %q", id, hint)
		}
		enrol = append(enrol, hint)
	}
	out := c.run(t, "", "run", "--rm", "-T", "keyservice-admin", "keys", "init")
	master := firstMatch(t, out, `master key \(shown once; store it offline\):\s*\n\s+(\S+)`)
	firstKid := firstMatch(t, out, `\(kid (\S+)\)`)
	// The gateway signs for this deployment only: the line `keys init`
	// prints for .env names the variable docker-compose.yml reads, and the id.
	ks := firstMatch(t, out, `deployment id[^\n]*:\s*\n\s+(ks_\S+)`)
	if line := firstMatch(t, out, `(?m)^\s+echo (\S+) >> \.env\s*$`); line != "BLINDGATE_KEYSERVICE_AUDIENCE="+ks {
		t.Errorf("keys init prints `echo %s >> .env`, want BLINDGATE_KEYSERVICE_AUDIENCE=%s (the compose variable)", line, ks)
	}
	env.add("BLINDGATE_KEYSERVICE_AUDIENCE=" + ks)
	for _, hint := range enrol {
		c.run(t, "", append([]string{"run", "--rm", "-T"}, strings.Fields(strings.TrimPrefix(hint, "docker compose run --rm "))...)...)
	}
	c.run(t, "", "up", "-d")

	// Up (liveness) but not ready: the key service starts sealed, and the
	// gateway's readiness names that as the reason it cannot take checkouts.
	eventually(t, 60*time.Second, "gateway /healthz through the published port", func() (bool, string) {
		st, b := get(t, gateway+"/healthz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})
	eventually(t, 30*time.Second, "gateway /readyz 503 naming the sealed key service", func() (bool, string) {
		st, b := get(t, gateway+"/readyz")
		return st == http.StatusServiceUnavailable && strings.Contains(string(b), `"keyservice":"sealed"`), fmt.Sprintf("%d %s", st, b)
	})
	// Sealed: no public key to encrypt to, so no checkout yet.
	if st, b := get(t, gateway+"/v1/keys"); st != http.StatusServiceUnavailable || !strings.Contains(string(b), `"keyservice_unavailable"`) {
		t.Errorf("GET /v1/keys before unseal: %d %s, want 503 keyservice_unavailable (the key service must start sealed)", st, b)
	}
	out = c.run(t, master+"\n", "run", "--rm", "-T", "keyservice-admin", "unseal")
	if !strings.Contains(out, "unsealed: the key service has its keys and serves") {
		t.Fatalf("unseal: %s", tail([]byte(out), 1000))
	}
	eventually(t, 30*time.Second, "public keys after unseal", func() (bool, string) {
		st, b := get(t, gateway+"/v1/keys")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})
	eventually(t, 30*time.Second, "gateway /readyz 200 after unseal", func() (bool, string) {
		st, b := get(t, gateway+"/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, b)
	})

	// The merchant's origin follows BLINDGATE_SHOP_PORT (env:, from .env).
	out = c.run(t, "", "run", "--rm", "-T", "gateway-admin", "merchants", "add", "-name", "Demo Shop", "-origin", "env:BLINDGATE_SHOP_ORIGIN")
	if !strings.Contains(out, "allowed origins: "+shop+"\n") {
		t.Errorf("merchants add with the documented origin: want %s allowed:\n%s", shop, out)
	}
	sk := firstMatch(t, out, `(?m)^\s+(sk_\S+)\s*$`)
	env.add("BLINDGATE_SHOP_MERCHANT_KEY=" + sk)
	// --no-deps: compose would otherwise recreate the key service, which comes
	// back sealed.
	c.run(t, "", "up", "-d", "--no-deps", "shop")
	c.run(t, "", "run", "--rm", "-T", "gateway-admin", "operators", "add", "-username", "alice", "-role", "revealer")
	eventually(t, 30*time.Second, "the shop configured with its merchant key", func() (bool, string) {
		st, b := get(t, shop+"/healthz")
		return st == http.StatusOK && strings.Contains(string(b), `"configured":true`), fmt.Sprintf("%d %s", st, b)
	})
	// A later plain `docker compose up -d` (after a reboot, an edit) keeps
	// all of it: .env holds the key and the ports, and nothing is recreated,
	// so the key service stays unsealed.
	c.run(t, "", "up", "-d")
	if st, b := get(t, shop+"/healthz"); st != http.StatusOK || !strings.Contains(string(b), `"configured":true`) {
		t.Errorf("the shop after a plain `up -d`: %d %s, want it still configured", st, b)
	}
	if st, b := get(t, gateway+"/readyz"); st != http.StatusOK {
		t.Errorf("gateway /readyz after a plain `up -d`: %d %s (the key service was recreated, sealed?)", st, b)
	}
	t.Logf("compose stack up by its documented steps in %s", time.Since(start).Round(100*time.Millisecond))

	tab := newBrowser(t, "compose-shop")
	run(t, tab, 30*time.Second, browsertest.Navigate(shop), chromedp.WaitVisible(chromedp.ID("pay")), chromedp.Click(chromedp.ID("pay")))
	frame := attachFrame(t, tab, gateway+"/checkout/")
	c0 := brandCards[0]
	typeCard(t, frame, c0)
	run(t, tab, 30*time.Second, chromedp.WaitVisible(chromedp.ID("result")))
	masked, token := text(t, tab, "masked"), text(t, tab, "token")
	if !strings.HasPrefix(token, "tok_") || masked != "visa •••• "+c0.Last4 {
		t.Errorf("shop shows token %q, card %q", token, masked)
	}

	// The documented rotation: the running key service picks up the new
	// version, and the gateway-admin service's wiring (its volume's signing
	// key, the key zone) lets rewrap move the shop's token. The gateway's
	// background rewrap may move it first (it runs a pass within a minute of
	// seeing the new version); then rewrap finds nothing to move and the
	// count by version shows the token under the new one.
	out = c.run(t, master+"\n", "run", "--rm", "-T", "keyservice-admin", "keys", "rotate")
	firstMatch(t, out, `new active key (\S+)`)
	var moved string
	underFirst := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(firstKid) + `\s+[1-9]`)
	eventually(t, 20*time.Second, "rewrap after the key service reloaded", func() (bool, string) {
		out, err := c.try("", "run", "--rm", "-T", "gateway-admin", "rewrap", "-kid", firstKid)
		m := regexp.MustCompile(`moved (\d+), skipped \d+, failed 0`).FindStringSubmatch(out)
		if err != nil || m == nil {
			return false, tail([]byte(out), 300) // also: the background pass holds the lease
		}
		if m[1] != "0" {
			moved = m[1]
			return true, ""
		}
		count, err := c.try("", "run", "--rm", "-T", "gateway-admin", "tokens", "count-by-kid")
		if err != nil || underFirst.MatchString(count) || !regexp.MustCompile(`(?m)^total\s+1$`).MatchString(count) {
			return false, tail([]byte(out+count), 300)
		}
		moved = "1"
		return true, ""
	})
	if moved != "1" {
		t.Errorf("rewrap moved %s tokens, want the shop's one", moved)
	}
}
