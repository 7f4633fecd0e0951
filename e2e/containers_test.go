package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	dockerclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

// labels mark everything the suite creates. Ryuk is off, so a run killed by
// -timeout leaves its containers behind; remove them with
//
//	docker rm -f -v $(docker ps -aq --filter label=org.blindgate.e2e)
//	docker network prune --filter label=org.blindgate.e2e
func labels(role string) map[string]string {
	return map[string]string{"org.blindgate.e2e": "1", "org.blindgate.e2e.role": role}
}

// startContainer creates (and, if start, starts) a container that lives until
// t ends. When t ends its logs are checked for the suite's card numbers
// (noCardsIn) and, if t failed, saved as <role>.log among t's artifacts,
// before the container is removed.
func startContainer(t *testing.T, role string, req testcontainers.ContainerRequest, start bool) testcontainers.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req.Labels = mergeLabels(req.Labels, labels(role))
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          start,
		Logger:           tclog.TestLogger(t),
	})
	// Cleanups run last-in first-out: the logs are read before removal.
	testcontainers.CleanupContainer(t, c)
	t.Cleanup(func() {
		if c == nil {
			return
		}
		logs := containerLogs(c)
		noCardsIn(t, role, logs)
		if t.Failed() {
			saveArtifact(t, role+".log", logs)
		}
	})
	if err != nil {
		t.Fatalf("start %s (%s): %v\n%s", role, req.Image, err, tail(containerLogs(c), 4000))
	}
	return c
}

// runOnce runs a one-shot container to completion and returns its exit code
// and combined output; a non-zero exit is the caller's to judge. Its output
// is checked for the suite's card numbers, and kept as <role>.log among t's
// artifacts if t fails.
func runOnce(t *testing.T, role string, req testcontainers.ContainerRequest) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req.Labels = mergeLabels(req.Labels, labels(role))
	req.WaitingFor = wait.ForExit().WithExitTimeout(90 * time.Second)
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		Logger:           tclog.TestLogger(t),
	})
	out := string(containerLogs(c))
	noCardsIn(t, role, []byte(out))
	defer func() {
		if err := testcontainers.TerminateContainer(c); err != nil {
			t.Logf("remove %s: %v", role, err)
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			saveArtifact(t, role+".log", []byte(out))
		}
	})
	if err != nil {
		t.Fatalf("run %s (%s %q): %v\n%s", role, req.Image, req.Cmd, err, tail([]byte(out), 4000))
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatalf("run %s: state: %v", role, err)
	}
	return st.ExitCode, out
}

// suiteCards are the card numbers the suite types, encrypts and forwards.
func suiteCards() []string {
	pans := make([]string, 0, len(brandCards))
	for _, c := range brandCards {
		pans = append(pans, c.PAN)
	}
	return pans
}

// noCardsIn fails t if a container's logs hold a card number the suite
// used, unbroken or grouped (internal/logtest's forms). The key service and
// the gateway run with their log level at debug here, so no level escapes.
func noCardsIn(t *testing.T, role string, logs []byte) {
	t.Helper()
	if found := logtest.Find(string(logs), suiteCards()...); found != "" {
		t.Errorf("the %s container's logs hold a card number (%s): no level may log one", role, found)
	}
}

func containerLogs(c testcontainers.Container) []byte {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return []byte(fmt.Sprintf("(logs unavailable: %v)", err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 8<<20))
	if err != nil && len(b) == 0 {
		return []byte(fmt.Sprintf("(logs unreadable: %v)", err))
	}
	return b
}

// zoneNet is a Docker network made for one test.
type zoneNet struct{ Name, ID string }

// newNetwork creates a bridge network that lives until t ends. internal
// makes it a closed zone: no route out and, with inhibit_ipv4, no address
// for the host on it, so not even a process on the Docker host reaches its
// containers. Plain --internal is not enough on Linux: the host keeps the
// bridge's gateway address and connects to every container by IP.
//
// Created with the Docker API directly: testcontainers' network.New drops
// driver options (v0.45 copies only Driver, Internal, IPv6, Labels, IPAM).
func newNetwork(t *testing.T, role string, internal bool) *zoneNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer dc.Close()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "bg-e2e-" + role + "-" + hex.EncodeToString(rnd[:])
	opts := dockerclient.NetworkCreateOptions{Driver: "bridge", Internal: internal, Labels: labels(role)}
	if internal {
		opts.Options = map[string]string{"com.docker.network.bridge.inhibit_ipv4": "true"}
	}
	res, err := dc.NetworkCreate(ctx, name, opts)
	if err != nil {
		t.Fatalf("network %s: %v", role, err)
	}
	// Registered before any container joins, so it runs after their removal.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dc, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			t.Logf("remove network %s: %v", name, err)
			return
		}
		defer dc.Close()
		if _, err := dc.NetworkRemove(ctx, res.ID, dockerclient.NetworkRemoveOptions{}); err != nil {
			t.Logf("remove network %s: %v", name, err)
		}
	})
	return &zoneNet{Name: name, ID: res.ID}
}

// onNetworks attaches a container request to nets in order, with alias on
// each. The first network is the one the container is created on.
func onNetworks(req *testcontainers.ContainerRequest, alias string, nets ...*zoneNet) {
	req.Networks = nil
	req.NetworkAliases = map[string][]string{}
	for _, n := range nets {
		req.Networks = append(req.Networks, n.Name)
		if alias != "" {
			req.NetworkAliases[n.Name] = []string{alias}
		}
	}
}

// publishLoopback publishes a container port on 127.0.0.1 only (a random
// host port): what the browser on this machine needs, and nothing on other
// interfaces.
func publishLoopback(req *testcontainers.ContainerRequest, port string) {
	publishLoopbackAt(req, port, 0)
}

// publishLoopbackAt is publishLoopback on a chosen host port (0: random), for
// a service that must know its external URL before it starts.
func publishLoopbackAt(req *testcontainers.ContainerRequest, port string, hostPort int) {
	req.ExposedPorts = append(req.ExposedPorts, port)
	prev := req.HostConfigModifier
	req.HostConfigModifier = func(hc *container.HostConfig) {
		if prev != nil {
			prev(hc)
		}
		p, err := network.ParsePort(port)
		if err != nil {
			panic(fmt.Sprintf("publishLoopback: bad port %q", port)) // a typo in a test, not a runtime condition
		}
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		hc.PortBindings[p] = []network.PortBinding{{HostIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), HostPort: strconv.Itoa(hostPort)}}
	}
}

// loopbackURL is http://127.0.0.1:<host port> for a published container port.
func loopbackURL(t *testing.T, c testcontainers.Container, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.MappedPort(ctx, port)
	if err != nil {
		t.Fatalf("mapped port %s: %v", port, err)
	}
	return "http://127.0.0.1:" + strconv.Itoa(int(p.Num()))
}

// publishedPorts lists the host bindings of a container ("8443/tcp ->
// 127.0.0.1:32768"); empty when nothing is published.
func publishedPorts(t *testing.T, c testcontainers.Container) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Inspect(ctx)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var out []string
	for p, bindings := range info.NetworkSettings.Ports {
		for _, b := range bindings {
			out = append(out, fmt.Sprintf("%s -> %s:%s", p, b.HostIP, b.HostPort))
		}
	}
	for p, bindings := range info.HostConfig.PortBindings {
		for _, b := range bindings {
			out = append(out, fmt.Sprintf("%s -> %s:%s (requested)", p, b.HostIP, b.HostPort))
		}
	}
	return out
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
