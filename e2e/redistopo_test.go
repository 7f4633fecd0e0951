package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// redisTopology starts a key zone's Redis on net from the suite's Redis
// image and says how clients reach it.
type redisTopology func(t *testing.T, net *zoneNet, image string) redisDeployment

// redisDeployment is a running Redis as the services are told of it.
type redisDeployment struct {
	Addrs  string // -redis: one address, a Cluster's nodes or Sentinels
	Master string // -redis-master: the Sentinel group's name, or ""
	// Nodes are the data nodes (a Sentinel group's first primary, then its
	// replica); Sentinels the Sentinel processes.
	Nodes     []testcontainers.Container
	Sentinels []testcontainers.Container
}

// Flags are the services' Redis flags (key service and gateway alike).
func (d redisDeployment) Flags() []string {
	f := []string{"-redis", d.Addrs}
	if d.Master != "" {
		f = append(f, "-redis-master", d.Master)
	}
	return f
}

// AdminEnv is the same for the admin image, which reads the gateway's
// store settings from the environment.
func (d redisDeployment) AdminEnv() map[string]string {
	env := map[string]string{"BLINDGATE_GW_STORE": "redis", "BLINDGATE_GW_REDIS": d.Addrs}
	if d.Master != "" {
		env["BLINDGATE_GW_REDIS_MASTER"] = d.Master
	}
	return env
}

// singleRedis is one node with append-only persistence at redis:6379, its
// port published on 127.0.0.1 when exposed.
func singleRedis(exposed bool) redisTopology {
	return func(t *testing.T, net *zoneNet, image string) redisDeployment {
		t.Helper()
		req := testcontainers.ContainerRequest{
			Image:      image,
			Cmd:        redisCmd(),
			WaitingFor: redisReady(),
		}
		onNetworks(&req, redisAlias, net)
		if exposed {
			publishLoopback(&req, redisPort)
		}
		c := startContainer(t, "redis", req, true)
		return redisDeployment{Addrs: redisAlias + ":6379", Nodes: []testcontainers.Container{c}}
	}
}

func redisReady() wait.Strategy {
	return wait.ForLog("Ready to accept connections").WithStartupTimeout(30 * time.Second)
}

// redisCluster is a Redis Cluster of n masters without replicas (the
// smallest Cluster: three), made as an operator makes one: cluster-enabled
// nodes, then `redis-cli --cluster create` from inside the zone. Clients
// get every node's address as seeds.
func redisCluster(n int) redisTopology {
	return func(t *testing.T, net *zoneNet, image string) redisDeployment {
		t.Helper()
		d := redisDeployment{}
		var seeds, members []string
		for i := 1; i <= n; i++ {
			alias := "redis-" + strconv.Itoa(i)
			req := testcontainers.ContainerRequest{
				Image: image,
				Cmd: append(redisCmd(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
					"--cluster-node-timeout", "5000"),
				WaitingFor: redisReady(),
			}
			onNetworks(&req, alias, net)
			c := startContainer(t, alias, req, true)
			d.Nodes = append(d.Nodes, c)
			seeds = append(seeds, alias+":6379")
			// Cluster nodes meet by address: redis-cli resolves no names.
			members = append(members, containerIPs(t, c)[0]+":6379")
		}
		d.Addrs = strings.Join(seeds, ",")
		out := redisCLI(t, d.Nodes[0], append(append([]string{"--cluster", "create"}, members...), "--cluster-replicas", "0", "--cluster-yes")...)
		if !strings.Contains(out, "All 16384 slots covered") {
			t.Fatalf("redis-cli --cluster create:\n%s", tail([]byte(out), 3000))
		}
		for i, c := range d.Nodes {
			eventually(t, 30*time.Second, fmt.Sprintf("cluster_state:ok on redis-%d", i+1), func() (bool, string) {
				info := redisCLI(t, c, "cluster", "info")
				return strings.Contains(info, "cluster_state:ok"), firstLine(info)
			})
		}
		t.Logf("Redis Cluster of %d masters: %s", n, d.Addrs)
		return d
	}
}

// sentinelMaster is the Sentinel group's name (-redis-master).
const sentinelMaster = "blindgate"

// redisSentinel is a primary with one replica (AOF on both) watched by
// three Sentinels (quorum 2) that declare the primary down after
// downAfter: the smallest group whose failover needs a majority.
func redisSentinel(downAfter time.Duration) redisTopology {
	return func(t *testing.T, net *zoneNet, image string) redisDeployment {
		t.Helper()
		d := redisDeployment{Master: sentinelMaster}
		preq := testcontainers.ContainerRequest{Image: image, Cmd: redisCmd(), WaitingFor: redisReady()}
		onNetworks(&preq, "redis-primary", net)
		primary := startContainer(t, "redis-primary", preq, true)
		// Sentinels and replicas name the primary by address: a container's
		// name leaves the zone's DNS when it stops, which is the failover.
		primaryIP := containerIPs(t, primary)[0]
		rreq := testcontainers.ContainerRequest{
			Image:      image,
			Cmd:        append(redisCmd(), "--replicaof", primaryIP, "6379"),
			WaitingFor: wait.ForLog("MASTER <-> REPLICA sync: Finished with success").WithStartupTimeout(30 * time.Second),
		}
		onNetworks(&rreq, "redis-replica", net)
		d.Nodes = []testcontainers.Container{primary, startContainer(t, "redis-replica", rreq, true)}

		conf := fmt.Sprintf("port 26379\ndir /data\nprotected-mode no\n"+
			"sentinel monitor %[1]s %[2]s 6379 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s 10000\n"+
			"sentinel parallel-syncs %[1]s 1\n", sentinelMaster, primaryIP, downAfter.Milliseconds())
		var addrs []string
		for i := 1; i <= 3; i++ {
			alias := "sentinel-" + strconv.Itoa(i)
			req := testcontainers.ContainerRequest{
				Image: image,
				// Sentinel rewrites its configuration file (in /data, which
				// the image's user may write).
				Cmd:        []string{"redis-server", "/data/sentinel.conf", "--sentinel"},
				Files:      []testcontainers.ContainerFile{{Reader: strings.NewReader(conf), ContainerFilePath: "/data/sentinel.conf", FileMode: 0o666}},
				WaitingFor: wait.ForLog("+monitor master").WithStartupTimeout(30 * time.Second),
			}
			onNetworks(&req, alias, net)
			d.Sentinels = append(d.Sentinels, startContainer(t, alias, req, true))
			addrs = append(addrs, alias+":26379")
		}
		d.Addrs = strings.Join(addrs, ",")
		// A failover needs the Sentinels to know the replica and each other.
		for i, s := range d.Sentinels {
			eventually(t, 30*time.Second, fmt.Sprintf("sentinel-%d knows the replica and the other Sentinels", i+1), func() (bool, string) {
				out := redisCLI(t, s, "-p", "26379", "sentinel", "master", sentinelMaster)
				return infoField(out, "num-slaves") == "1" && infoField(out, "num-other-sentinels") == "2",
					fmt.Sprintf("num-slaves %q, num-other-sentinels %q", infoField(out, "num-slaves"), infoField(out, "num-other-sentinels"))
			})
		}
		t.Logf("Redis Sentinel group %q: primary %s, one replica, Sentinels %s", sentinelMaster, primaryIP, d.Addrs)
		return d
	}
}

// sentinelPrimary asks a Sentinel which address is the group's primary.
func sentinelPrimary(t *testing.T, d redisDeployment) string {
	t.Helper()
	out := redisCLI(t, d.Sentinels[len(d.Sentinels)-1], "-p", "26379", "sentinel", "get-master-addr-by-name", sentinelMaster)
	return strings.Join(strings.Fields(out), ":")
}

// redisCLI runs redis-cli with args inside c (the Redis image has no
// shell; exec runs the binary itself) and returns its output.
func redisCLI(t *testing.T, c testcontainers.Container, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, r, err := c.Exec(ctx, append([]string{"redis-cli"}, args...), tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("redis-cli %s: %v", strings.Join(args, " "), err)
	}
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, r)
	if code != 0 {
		t.Fatalf("redis-cli %s: exit %d\n%s", strings.Join(args, " "), code, tail(buf.Bytes(), 2000))
	}
	return buf.String()
}

// infoField reads "name\nvalue" pairs as redis-cli prints a Sentinel
// reply, or "name:value" lines as INFO prints them.
func infoField(out, name string) string {
	lines := strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
		if l == name && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
