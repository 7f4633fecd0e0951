package e2e

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/blindgate/blindgate/deploy/images"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Names and ports inside the zones.
const (
	ksAlias    = "keyservice"
	redisAlias = "redis"
	gwAlias    = "gateway"
	ksPort     = "8443/tcp"
	redisPort  = "6379/tcp"
	ksAudience = "blindgate-keyservice"
	// ksURL is the key service's URL inside the zone: the htu every signed
	// request names, also those the host sends through a published port.
	ksURL = "http://" + ksAlias + ":8443"
)

// redisCmd is Redis' command line in every zone: append-only persistence in
// /data. Spelled out rather than left to the image so that an override
// image (BLINDGATE_E2E_REDIS_IMAGE=redis:7-alpine) runs the same way.
func redisCmd() []string {
	return []string{"redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "no"}
}

// clientSpec is a signed-request client enrolled in the key service's
// allow-list before it starts.
type clientSpec struct {
	ID  string
	Ops []string // wire.OpInspect, ...
}

type zoneOptions struct {
	// Exposed puts the zone on an ordinary network and publishes the key
	// service's and Redis' ports on 127.0.0.1, for tests of the key service
	// alone. Otherwise (production-like) the zone is an internal network the
	// host has no address on, and nothing is published.
	Exposed bool
	// Clients to enroll; empty means one "e2e" client that may inspect.
	Clients []clientSpec
	// ServeArgs are extra `keyservice serve` flags.
	ServeArgs []string
	// Binds are host:container bind mounts for the key service (a
	// size-limited audit disk).
	Binds []string
	// Redis starts the zone's Redis; nil: one node (AOF) at redis:6379.
	Redis redisTopology
	// KeyServices is how many key service replicas to run (0 or 1: one).
	// Replicas share the first one's state volume (one keyring, one
	// allow-list, as docs/KEYS.md "Replicas" requires) and each writes an
	// audit log of its own there (audit-<n>.log; the first keeps audit.log).
	KeyServices int
}

// keyZone is Redis and the key service on one network of their own.
type keyZone struct {
	Net *zoneNet
	// Redis is the zone's Redis: its one node, the first Cluster node or
	// the Sentinel group's first primary; RedisDeploy has them all.
	Redis       testcontainers.Container
	RedisDeploy redisDeployment
	// KeyService is the first key service; KeyServices every replica,
	// KeyServices[0] == KeyService.
	KeyService  testcontainers.Container
	KeyServices []testcontainers.Container
	// Signers sign requests as each enrolled client (TTL: the default).
	Signers map[string]*client.Signer

	ksImage string
}

// newKeyZone starts Redis, enrolls the clients and starts the key service
// (dev auto-unseal: the keyring is created on first start in the key
// service's state volume). Everything is removed when t ends.
func newKeyZone(t *testing.T, opts zoneOptions) *keyZone {
	t.Helper()
	refs := needImages(t, images.KeyService, images.Redis)
	start := time.Now()
	z := &keyZone{ksImage: refs[images.KeyService], Signers: map[string]*client.Signer{}}
	z.Net = newNetwork(t, "key-zone", !opts.Exposed)

	topo := opts.Redis
	if topo == nil {
		topo = singleRedis(opts.Exposed)
	}
	z.RedisDeploy = topo(t, z.Net, refs[images.Redis])
	z.Redis = z.RedisDeploy.Nodes[0]

	args := append(append([]string{
		"serve", "-dev-insecure-http", "-dev-auto-unseal",
		"-addr", "0.0.0.0:8443", "-audience", ksAudience,
		"-public-url", strings.Join(ksURLs(opts.KeyServices), ","),
		// Passkey approval needs the back office's origin; a test whose
		// back office reveals gives its own in ServeArgs (the last wins).
		"-webauthn-origins", "http://localhost",
	}, z.RedisDeploy.Flags()...), opts.ServeArgs...)
	// Every level is logged, so the check for card numbers in its logs
	// (startContainer) covers DEBUG too.
	kreq := testcontainers.ContainerRequest{Image: z.ksImage, Cmd: args, Env: map[string]string{"BLINDGATE_KS_LOG_LEVEL": "debug"}}
	if len(opts.Binds) > 0 {
		kreq.HostConfigModifier = func(hc *container.HostConfig) { hc.Binds = append(hc.Binds, opts.Binds...) }
	}
	onNetworks(&kreq, ksAlias, z.Net)
	if opts.Exposed {
		publishLoopback(&kreq, ksPort)
		kreq.WaitingFor = wait.ForHTTP("/readyz").WithPort(ksPort).WithForcedIPv4LocalHost().
			WithStartupTimeout(60 * time.Second)
	} else {
		// Nothing is reachable from here, and the image has no shell to
		// exec a check in: wait for the listener's log line.
		kreq.WaitingFor = wait.ForLog("key service listening").WithStartupTimeout(60 * time.Second)
	}
	// Created but not started: the allow-list must be in its state volume
	// before `serve` reads it.
	z.KeyService = startContainer(t, "keyservice", kreq, false)

	clients := opts.Clients
	if len(clients) == 0 {
		clients = []clientSpec{{ID: "e2e", Ops: []string{wire.OpInspect}}}
	}
	for _, c := range clients {
		z.enroll(t, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := z.KeyService.Start(ctx); err != nil {
		t.Fatalf("start keyservice: %v\n%s", err, tail(containerLogs(z.KeyService), 4000))
	}
	z.KeyServices = []testcontainers.Container{z.KeyService}
	// Replicas start once the first has made the keyring (dev auto-unseal
	// creates it on first start): they open the same file.
	ksID := z.KeyService.GetContainerID()
	for n := 2; n <= opts.KeyServices; n++ {
		rreq := kreq
		rreq.Cmd = append(slices.Clone(args), "-audit-log", ksReplicaAuditLog(n))
		rreq.HostConfigModifier = func(hc *container.HostConfig) {
			if kreq.HostConfigModifier != nil {
				kreq.HostConfigModifier(hc)
			}
			hc.VolumesFrom = []string{ksID}
		}
		onNetworks(&rreq, ksReplicaAlias(n), z.Net)
		z.KeyServices = append(z.KeyServices, startContainer(t, ksReplicaAlias(n), rreq, true))
	}
	t.Logf("key zone up in %s (exposed=%v, %d key service(s))", time.Since(start).Round(100*time.Millisecond), opts.Exposed, len(z.KeyServices))
	return z
}

// ksReplicaAlias names key service replica n (from 1) in the zone: the
// first is "keyservice", as in every single-replica scenario.
func ksReplicaAlias(n int) string {
	if n <= 1 {
		return ksAlias
	}
	return ksAlias + "-" + strconv.Itoa(n)
}

// ksReplicaAuditLog is replica n's audit log in the shared state volume.
func ksReplicaAuditLog(n int) string {
	if n <= 1 {
		return ksAuditLog
	}
	return "/var/lib/blindgate/audit-" + strconv.Itoa(n) + ".log"
}

// ksURLs are the URLs of n key service replicas in the zone: what the
// gateway's -keyservice-url lists and every replica's -public-url accepts
// as htu (a request signed for one replica is valid at the others but for
// its jti, which the shared replay cache holds).
func ksURLs(n int) []string {
	urls := []string{ksURL}
	for i := 2; i <= n; i++ {
		urls = append(urls, "http://"+ksReplicaAlias(i)+":8443")
	}
	return urls
}

// enroll makes a signing key for c on the host and adds its public half to
// the key service's allow-list with the image's own admin command.
func (z *keyZone) enroll(t *testing.T, c clientSpec) {
	t.Helper()
	key, err := client.GenerateKey(client.AlgEdDSA)
	if err != nil {
		t.Fatalf("client key: %v", err)
	}
	kid, err := client.NewKid(c.ID)
	if err != nil {
		t.Fatalf("client kid: %v", err)
	}
	pub, err := jose.MarshalPublicJWK(key.Public(), kid)
	if err != nil {
		t.Fatalf("client jwk: %v", err)
	}
	path := "/tmp/" + kid + ".jwk"
	z.admin(t, []testcontainers.ContainerFile{{Reader: bytes.NewReader(pub), ContainerFilePath: path, FileMode: 0o644}},
		"clients", "add", "-id", c.ID, "-ops", strings.Join(c.Ops, ","), "-public-key", path)
	z.Signers[c.ID] = &client.Signer{ClientID: c.ID, Kid: kid, Audience: ksAudience, Key: key}
}

// admin runs `keyservice <args...>` in a one-shot container of the key
// service image that shares the key service's state volume and has no
// network: how an operator administers a key service whose port is not
// published (and there is no shell to `docker exec` into). It fails t on a
// non-zero exit and returns the output.
func (z *keyZone) admin(t *testing.T, files []testcontainers.ContainerFile, args ...string) string {
	t.Helper()
	ksID := z.KeyService.GetContainerID()
	req := testcontainers.ContainerRequest{
		Image: z.ksImage,
		Cmd:   args,
		Files: files,
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.VolumesFrom = []string{ksID}
			hc.NetworkMode = "none"
		},
	}
	code, out := runOnce(t, "keyservice-admin", req)
	if code != 0 {
		t.Fatalf("keyservice %s: exit %d\n%s", strings.Join(args, " "), code, tail([]byte(out), 4000))
	}
	return out
}

// signingKeyFile is the private JWK of an enrolled client, to hand to the
// gateway container as a file. Mode 0444 because copied files belong to
// root and the gateway runs as 65532; acceptable for a throw-away test key.
func (z *keyZone) signingKeyFile(t *testing.T, clientID, path string) testcontainers.ContainerFile {
	t.Helper()
	s, ok := z.Signers[clientID]
	if !ok {
		t.Fatalf("no enrolled client %q", clientID)
	}
	b, err := jose.MarshalPrivateJWK(s.Key, s.Kid)
	if err != nil {
		t.Fatalf("private jwk: %v", err)
	}
	return testcontainers.ContainerFile{Reader: bytes.NewReader(b), ContainerFilePath: path, FileMode: 0o444}
}

// containerIPs are the addresses of one of this test's own containers.
func containerIPs(t *testing.T, c testcontainers.Container) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := c.ContainerIPs(ctx)
	if err != nil || len(ips) == 0 {
		t.Fatalf("container IPs: %v (%d)", err, len(ips))
	}
	return ips
}

// topology is the production layout: the key zone (internal network, Redis
// and the key service, nothing published) and a public network; the
// gateway is the only container on both and the only one with a published
// port.
type topology struct {
	*keyZone
	Public  *zoneNet
	Gateway testcontainers.Container
}

func newTopology(t *testing.T, opts zoneOptions) *topology {
	t.Helper()
	if opts.Exposed {
		t.Fatal("newTopology: the production topology publishes the gateway only")
	}
	z := newKeyZone(t, opts)
	return &topology{keyZone: z, Public: newNetwork(t, "public-zone", false)}
}

// gatewaySpec says how to run the gateway image. Scenarios fill it in from
// cmd/gateway's flags: args naming http://keyservice:8443, redis:6379, the
// client id and a key file from signingKeyFile.
type gatewaySpec struct {
	Args  []string
	Env   map[string]string
	Files []testcontainers.ContainerFile
	Port  string // the port the gateway listens on, e.g. "8080/tcp"
	Ready string // a path answering 200 once it is ready, e.g. "/readyz"
	// HostPort is the port published on 127.0.0.1; 0 picks one. Fixed when
	// the gateway must know its public URL (-public-url) before it starts.
	HostPort int
	// Role is the container's alias, log and artifact name; "" means
	// "gateway" (a second replica is "gateway-2").
	Role string
}

// runGateway starts one gateway on both networks, publishes its port on
// 127.0.0.1 and returns its container and base URL, http://127.0.0.1:<port>
// (a secure context for the browser's WebCrypto); spec.Role names a second
// replica's container and logs.
func (tp *topology) runGateway(t *testing.T, spec gatewaySpec) (testcontainers.Container, string) {
	t.Helper()
	role := spec.Role
	if role == "" {
		role = gwAlias
	}
	refs := needImages(t, images.Gateway)
	// Every level is logged, so the check for card numbers in its logs
	// (startContainer) covers DEBUG too.
	env := map[string]string{"BLINDGATE_GW_LOG_LEVEL": "debug"}
	maps.Copy(env, spec.Env)
	req := testcontainers.ContainerRequest{
		Image: refs[images.Gateway],
		Cmd:   spec.Args,
		Env:   env,
		Files: spec.Files,
		WaitingFor: wait.ForHTTP(spec.Ready).WithPort(spec.Port).WithForcedIPv4LocalHost().
			WithStartupTimeout(60 * time.Second),
	}
	// Created on the public network, which has a route to the host for the
	// published port; the internal one is joined before start.
	onNetworks(&req, role, tp.Public, tp.Net)
	publishLoopbackAt(&req, spec.Port, spec.HostPort)
	c := startContainer(t, role, req, true)
	return c, loopbackURL(t, c, spec.Port)
}

// probeResult is what blindgate/probe saw from inside a network zone.
type probeResult struct {
	Reached bool   // an HTTP answer came back (from whoever answered)
	Status  int    // when reached
	Body    string // when reached
	Output  string // the probe's whole output, for messages
}

// probe GETs url from a one-shot container on nets: what a container in
// that zone can reach.
func probe(t *testing.T, url string, nets ...*zoneNet) probeResult {
	t.Helper()
	return probeArgs(t, []string{"-timeout", "3s", url}, nets...)
}

// probeArgs runs the probe with its command line (e2e/probe: method,
// headers, body, then the URL) on nets.
func probeArgs(t *testing.T, args []string, nets ...*zoneNet) probeResult {
	t.Helper()
	refs := needImages(t, images.Probe)
	req := testcontainers.ContainerRequest{Image: refs[images.Probe], Cmd: args}
	onNetworks(&req, "", nets...)
	code, out := runOnce(t, "probe", req)
	res := probeResult{Output: strings.TrimSpace(out)}
	switch code {
	case 0:
		first, body, _ := strings.Cut(out, "\n")
		n, err := strconv.Atoi(strings.TrimPrefix(first, "status "))
		if err != nil {
			t.Fatalf("probe output %q", tail([]byte(out), 500))
		}
		res.Reached, res.Status, res.Body = true, n, strings.TrimSpace(body)
	case 3:
	default:
		t.Fatalf("probe exit %d: %s", code, tail([]byte(out), 500))
	}
	return res
}
