package kubernetes

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The NetworkPolicy semantics these tests evaluate, as the API defines
// them: a pod selected by no policy of a direction is open in that
// direction; once selected, only what some rule of a selecting policy
// admits passes; a connection needs the source's egress and the
// destination's ingress. Peers: a podSelector alone means the policy's own
// namespace, a namespaceSelector picks namespaces by label, an ipBlock
// matches addresses outside the cluster (what a plugin does with an ipBlock
// that covers pod addresses varies; no rule here relies on it). Ports: a
// number or a named container port of the destination, TCP by default.

// endpoint is a pod (in a namespace, with labels and named ports) or an
// address outside the cluster.
type endpoint struct {
	name      string
	namespace string // "" for an address outside the cluster
	labels    map[string]string
	ports     map[string]int32 // named container ports
	ip        netip.Addr
}

func (e endpoint) pod() bool { return e.namespace != "" }

// cluster is the world the policies are judged in: namespaces with their
// labels, and endpoints.
type cluster struct {
	namespaces map[string]map[string]string
	endpoints  []endpoint
	policies   []*networkingv1.NetworkPolicy
}

func (c *cluster) endpoint(t *testing.T, name string) endpoint {
	t.Helper()
	for _, e := range c.endpoints {
		if e.name == name {
			return e
		}
	}
	t.Fatalf("no endpoint %s", name)
	return endpoint{}
}

func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		panic(err)
	}
	return s.Matches(labels.Set(set))
}

func hasType(p *networkingv1.NetworkPolicy, ty networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 { // the API's defaulting
		return ty == networkingv1.PolicyTypeIngress || (ty == networkingv1.PolicyTypeEgress && len(p.Spec.Egress) > 0)
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == ty {
			return true
		}
	}
	return false
}

// peerMatches: does one from/to entry of policy p admit e?
func (c *cluster) peerMatches(p *networkingv1.NetworkPolicy, peer networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if peer.IPBlock != nil {
		if e.pod() {
			return false
		}
		cidr := netip.MustParsePrefix(peer.IPBlock.CIDR)
		if !cidr.Contains(e.ip) {
			return false
		}
		for _, ex := range peer.IPBlock.Except {
			if netip.MustParsePrefix(ex).Contains(e.ip) {
				return false
			}
		}
		return true
	}
	if !e.pod() {
		return false
	}
	if peer.NamespaceSelector == nil {
		if e.namespace != p.Namespace {
			return false
		}
	} else if !selects(peer.NamespaceSelector, c.namespaces[e.namespace]) {
		return false
	}
	return peer.PodSelector == nil || selects(peer.PodSelector, e.labels)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, dst endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntVal
		if p.Port.Type == 1 { // a named port: the destination's
			var ok bool
			if n, ok = dst.ports[p.Port.StrVal]; !ok {
				continue
			}
		}
		hi := n
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if port >= n && port <= hi {
			return true
		}
	}
	return false
}

// allowed reports whether src may open a connection to dst:port/proto.
func (c *cluster) allowed(src, dst endpoint, port int32, proto corev1.Protocol) bool {
	return c.direction(src, dst, networkingv1.PolicyTypeEgress, port, proto) &&
		c.direction(dst, src, networkingv1.PolicyTypeIngress, port, proto)
}

// direction judges one side: subject's policies of type ty, whose rules
// name peer (the destination's named ports resolve the rules' ports).
func (c *cluster) direction(subject, peer endpoint, ty networkingv1.PolicyType, port int32, proto corev1.Protocol) bool {
	if !subject.pod() {
		return true
	}
	dst := subject
	if ty == networkingv1.PolicyTypeEgress {
		dst = peer
	}
	selected := false
	for _, p := range c.policies {
		if p.Namespace != subject.namespace || !hasType(p, ty) || !selects(&p.Spec.PodSelector, subject.labels) {
			continue
		}
		selected = true
		if ty == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				if (len(r.From) == 0 || anyPeer(c, p, r.From, peer)) && portMatches(r.Ports, dst, port, proto) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Egress {
				if (len(r.To) == 0 || anyPeer(c, p, r.To, peer)) && portMatches(r.Ports, dst, port, proto) {
					return true
				}
			}
		}
	}
	return !selected
}

func anyPeer(c *cluster, p *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, e endpoint) bool {
	for _, peer := range peers {
		if c.peerMatches(p, peer, e) {
			return true
		}
	}
	return false
}

// redisPlacement is where each build's Redis is: pods (namespace, labels)
// or addresses outside the cluster.
var redisPlacement = map[string][]endpoint{
	"base": {
		{name: "redis-0", namespace: namespace, labels: map[string]string{nameLabel: "redis"}},
		{name: "redis-1", namespace: namespace, labels: map[string]string{nameLabel: "redis"}},
	},
	"overlays/redis-sentinel": {
		{name: "sentinel-1", ip: netip.MustParseAddr("10.40.0.11")},
		{name: "redis-replica", ip: netip.MustParseAddr("10.40.0.21")},
	},
	"overlays/redis-cluster": {
		{name: "redis-cluster-0", namespace: "redis", labels: map[string]string{nameLabel: "redis-cluster", "app.kubernetes.io/instance": "redis-cluster"}},
		{name: "redis-cluster-5", namespace: "redis", labels: map[string]string{nameLabel: "redis-cluster", "app.kubernetes.io/instance": "redis-cluster"}},
	},
	// The Bitnami chart's pods (release "redis"), by the chart's labels.
	"overlays/bitnami-redis": {
		{name: "redis-node-0", namespace: namespace, labels: map[string]string{nameLabel: "redis", "app.kubernetes.io/instance": "redis", componentLabel: "node"}},
		{name: "redis-node-2", namespace: namespace, labels: map[string]string{nameLabel: "redis", "app.kubernetes.io/instance": "redis", componentLabel: "node"}},
	},
}

func init() { redisPlacement["overlays/hsm"] = redisPlacement["overlays/redis-sentinel"] }

// hsmAddr is the HSM of overlays/hsm.
var hsmAddr = netip.MustParseAddr("10.50.0.10")

// world builds the cluster for one build: its own pods (one per workload,
// two of the key service's), the admin pod, Redis where the build puts it,
// and the neighbours a real cluster has.
func world(t *testing.T, dir string) *cluster {
	t.Helper()
	b := render(t, dir)
	c := &cluster{
		namespaces: map[string]map[string]string{},
		policies:   b.policies,
	}
	for _, ns := range []string{"kube-system", "ingress-nginx", "monitoring", "redis", "elsewhere"} {
		c.namespaces[ns] = map[string]string{"kubernetes.io/metadata.name": ns}
	}
	for _, ns := range b.namespaces {
		l := map[string]string{"kubernetes.io/metadata.name": ns.Name}
		for k, v := range ns.Labels {
			l[k] = v
		}
		c.namespaces[ns.Name] = l
	}
	addPod := func(name, ns string, spec corev1.PodSpec, l map[string]string) {
		ports := map[string]int32{}
		for _, ctr := range spec.Containers {
			for _, p := range ctr.Ports {
				if p.Name != "" {
					ports[p.Name] = p.ContainerPort
				}
			}
		}
		c.endpoints = append(c.endpoints, endpoint{name: name, namespace: ns, labels: l, ports: ports})
	}
	for _, w := range b.workloads() {
		addPod(w.name, w.namespace, w.spec, w.meta.Labels)
		if w.kind == "StatefulSet" {
			addPod(w.name+"-1", w.namespace, w.spec, w.meta.Labels)
		}
	}
	admin := adminPod(t)
	addPod("gateway-admin", namespace, admin.Spec, admin.Labels)
	c.endpoints = append(c.endpoints, redisPlacement[dir]...)
	c.endpoints = append(c.endpoints,
		endpoint{name: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}},
		endpoint{name: "ingress-controller", namespace: "ingress-nginx", labels: map[string]string{nameLabel: "ingress-nginx"}},
		endpoint{name: "prometheus", namespace: "monitoring", labels: map[string]string{nameLabel: "prometheus"}},
		// A pod someone runs in the namespace, with no Blindgate labels, and
		// one that copies the name label but is no component of ours.
		endpoint{name: "stranger", namespace: namespace, labels: map[string]string{"run": "debug"}},
		endpoint{name: "impostor", namespace: namespace, labels: map[string]string{nameLabel: "blindgate", componentLabel: "debug"}},
		// A pod in another namespace carrying the gateway's labels: the
		// key service's rule names pods of its own namespace only.
		endpoint{name: "lookalike-gateway", namespace: "elsewhere", labels: map[string]string{nameLabel: "blindgate", componentLabel: "gateway"}},
		endpoint{name: "kube-apiserver", ip: netip.MustParseAddr("172.20.0.1")},
		endpoint{name: "cloud-metadata", ip: netip.MustParseAddr("169.254.169.254")},
		endpoint{name: "private-host", ip: netip.MustParseAddr("10.1.2.3")},
		endpoint{name: "processor", ip: netip.MustParseAddr("203.0.113.10")},
		endpoint{name: "merchant-webhook", ip: netip.MustParseAddr("198.51.100.7")},
		endpoint{name: "processor-v6", ip: netip.MustParseAddr("2001:db8::10")},
		endpoint{name: "hsm", ip: hsmAddr},
	)
	return c
}

// probePorts are the ports tried between every pair of endpoints.
var probePorts = []struct {
	port  int32
	proto corev1.Protocol
}{
	{53, corev1.ProtocolUDP}, {53, corev1.ProtocolTCP}, {80, corev1.ProtocolTCP}, {443, corev1.ProtocolTCP},
	{1792, corev1.ProtocolTCP}, {3128, corev1.ProtocolTCP}, {6379, corev1.ProtocolTCP}, {8080, corev1.ProtocolTCP},
	{8443, corev1.ProtocolTCP}, {9091, corev1.ProtocolTCP}, {16379, corev1.ProtocolTCP}, {26379, corev1.ProtocolTCP},
}

func isRedis(dir string, e endpoint) bool {
	for _, r := range redisPlacement[dir] {
		if r.name == e.name {
			return true
		}
	}
	return false
}

func component(e endpoint) string {
	if e.pod() && e.namespace == namespace && e.labels[nameLabel] == "blindgate" {
		return e.labels[componentLabel]
	}
	return ""
}

// ours: a pod of this namespace.
func ours(e endpoint) bool { return e.pod() && e.namespace == namespace }

// expected is the whole connectivity of the trust zones, for every pair of
// endpoints and every probe port: the test compares the policies' answer
// with it, both ways, so a path opened by mistake fails as surely as one
// missing. Towards anything outside the namespace only our side (egress) is
// judged: other namespaces' ingress is theirs.
func expected(dir string, src, dst endpoint, port int32, proto corev1.Protocol) bool {
	tcp := proto == corev1.ProtocolTCP
	redisPort := tcp && (port == 6379 || port == 26379)
	if dir == "overlays/redis-cluster" {
		redisPort = tcp && port == 6379
	}
	dns := dst.name == "kube-dns" && port == 53
	redis := isRedis(dir, dst) && redisPort
	public := !dst.pod() && !isRedis(dir, dst) && !privateAddr(dst.ip)
	if !ours(src) {
		switch src.name {
		case "ingress-controller":
			return component(dst) == "gateway" && tcp && port == 8080
		case "prometheus":
			return component(dst) == "gateway" && tcp && port == 9091
		}
		return false
	}
	switch component(src) {
	case "gateway":
		return dns || redis || (component(dst) == "keyservice" && tcp && port == 8443) || (public && tcp && port == 443)
	case "gateway-admin":
		return dns || redis
	case "keyservice":
		return dns || redis || (component(dst) == "egress" && tcp && port == 3128) ||
			(dir == "overlays/hsm" && dst.name == "hsm" && tcp && port == 1792)
	case "egress":
		return dns || (public && tcp && port == 443)
	case "debug":
		// The impostor's name label makes it a DNS client, nothing more.
		return dns
	}
	if isRedis(dir, src) {
		// A Redis in the namespace: to its own pods (replication,
		// Sentinel) and DNS.
		return dns || (isRedis(dir, dst) && ours(dst))
	}
	return false
}

// privateAddr: the ranges the policies keep Blindgate's public-facing
// egress away from.
func privateAddr(ip netip.Addr) bool {
	for _, p := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"} {
		if netip.MustParsePrefix(p).Contains(ip) {
			return true
		}
	}
	return false
}

// TestNetworkPolicies evaluates every build's policies over every pair of
// endpoints and probe port and compares the result with the trust zones
// (expected): ingress controller -> gateway; gateway -> key service, Redis,
// public HTTPS; key service -> Redis, egress proxy (and the HSM in its
// overlay); egress proxy -> public HTTPS; DNS for all; nothing else, and in
// particular nothing but gateway pods of this namespace reaches the key
// service.
func TestNetworkPolicies(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			c := world(t, dir)
			checked := 0
			for _, src := range c.endpoints {
				for _, dst := range c.endpoints {
					if src.name == dst.name || (!ours(src) && !ours(dst)) {
						continue
					}
					for _, p := range probePorts {
						var got bool
						if ours(dst) {
							got = c.allowed(src, dst, p.port, p.proto)
						} else {
							got = c.direction(src, dst, networkingv1.PolicyTypeEgress, p.port, p.proto)
						}
						checked++
						if want := expected(dir, src, dst, p.port, p.proto); got != want {
							t.Errorf("%s -> %s:%d/%s: policies say %v, the trust zones say %v", src.name, dst.name, p.port, p.proto, got, want)
						}
					}
				}
			}
			if checked < 1000 {
				t.Errorf("only %d connections judged", checked)
			}
		})
	}
}

// TestKeyServiceReachedOnlyByGateways states the key zone's boundary on its
// own: of every endpoint in the model, only the gateway's pods reach a key
// service pod on any port, and a key service pod reaches only Redis, the
// egress proxy, DNS (and its HSM).
func TestKeyServiceReachedOnlyByGateways(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			c := world(t, dir)
			ks := c.endpoint(t, "keyservice")
			for _, src := range c.endpoints {
				for _, p := range probePorts {
					if src.name == ks.name {
						continue
					}
					if c.allowed(src, ks, p.port, p.proto) && (component(src) != "gateway" || p.port != 8443) {
						t.Errorf("%s reaches the key service on %d/%s", src.name, p.port, p.proto)
					}
					// The key service's own ingress, whatever the source's
					// egress allows: a pod whose egress someone opens still
					// does not get in.
					if c.direction(ks, src, networkingv1.PolicyTypeIngress, p.port, p.proto) && (component(src) != "gateway" || p.port != 8443) {
						t.Errorf("the key service's ingress admits %s on %d/%s", src.name, p.port, p.proto)
					}
				}
				for _, p := range probePorts {
					if src.name == ks.name || !c.direction(ks, src, networkingv1.PolicyTypeEgress, p.port, p.proto) {
						continue
					}
					ok := isRedis(dir, src) || component(src) == "egress" || src.name == "kube-dns" || (dir == "overlays/hsm" && src.name == "hsm")
					if !ok {
						t.Errorf("the key service reaches %s on %d/%s", src.name, p.port, p.proto)
					}
				}
			}
			if !c.allowed(c.endpoint(t, "gateway"), ks, 8443, corev1.ProtocolTCP) {
				t.Error("the gateway cannot reach the key service")
			}
		})
	}
}

// TestRedisAddressesAreReachable: the Redis addresses each build configures
// point where its policies let the gateway and the key service go: an
// address is reachable from both on its port, and a Cluster's service names
// are in the namespace the policy selects.
func TestRedisAddressesAreReachable(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			c := world(t, dir)
			for _, comp := range []string{"gateway", "keyservice"} {
				w := b.workload(t, comp)
				env := containerEnv(t, b, w.spec.Containers[0])
				prefix := map[string]string{"gateway": "BLINDGATE_GW_", "keyservice": "BLINDGATE_KS_"}[comp]
				addrs := env[prefix+"REDIS"]
				if addrs == "" {
					t.Fatalf("%s: no %sREDIS", comp, prefix)
				}
				if master := env[prefix+"REDIS_MASTER"]; master != "" && !strings.Contains(addrs, ":26379") {
					t.Errorf("%s: a Sentinel master name with addresses %s not on Sentinel's port", comp, addrs)
				}
				src := c.endpoint(t, comp)
				for _, a := range strings.Split(addrs, ",") {
					host, portStr, err := net.SplitHostPort(strings.TrimSpace(a))
					if err != nil {
						t.Fatalf("%s: %q: %v", comp, a, err)
					}
					port, _ := strconv.Atoi(portStr)
					if ip, err := netip.ParseAddr(host); err == nil {
						dst := endpoint{name: "configured " + a, ip: ip}
						if !c.direction(src, dst, networkingv1.PolicyTypeEgress, int32(port), corev1.ProtocolTCP) {
							t.Errorf("%s: Redis address %s is outside what its policy lets it reach", comp, a)
						}
						continue
					}
					ns := namespace
					if parts := strings.Split(host, "."); len(parts) >= 4 && parts[3] == "svc" {
						ns = parts[2]
					}
					var reached bool
					for _, r := range redisPlacement[dir] {
						if r.namespace == ns && c.allowed(src, r, int32(port), corev1.ProtocolTCP) {
							reached = true
						}
					}
					if !reached {
						t.Errorf("%s: Redis address %s (namespace %s): no Redis pod there is reachable on %d", comp, a, ns, port)
					}
				}
			}
		})
	}
}

func (e endpoint) String() string { return fmt.Sprintf("%s/%s", e.namespace, e.name) }
