package kubernetes

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// adminPod is the partial Pod that `kubectl run --overrides` merges into the
// gateway admin pod (docs/KUBERNETES.md), decoded strictly.
func adminPod(t *testing.T) *corev1.Pod {
	t.Helper()
	raw, err := os.ReadFile("admin/gateway-admin.json")
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := strict.Decode(raw, nil, nil)
	if err != nil {
		t.Fatalf("admin/gateway-admin.json: %v", err)
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		t.Fatalf("admin/gateway-admin.json is a %T, want a Pod", obj)
	}
	return p
}

// TestRestrictedSecurity: every container of every build (and the admin
// pod) runs as uid 65532, non-root, with the RuntimeDefault seccomp profile,
// no capability, no privilege escalation and a read-only root filesystem
// (the container's own setting, else the pod's), and no pod reaches the
// host or the Kubernetes API.
func TestRestrictedSecurity(t *testing.T) {
	check := func(t *testing.T, name string, spec corev1.PodSpec) {
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (no pod here calls the API)", name)
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("%s: shares a host namespace", name)
		}
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("%s: volume %s is a hostPath", name, v.Name)
			}
		}
		psc := spec.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
		if len(containers) == 0 {
			t.Errorf("%s: no containers", name)
		}
		for _, c := range containers {
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			where := name + "/" + c.Name
			if v := firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot); !v {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if v := firstInt(sc.RunAsUser, psc.RunAsUser); v != runtimeUID {
				t.Errorf("%s: runAsUser %d, want %d", where, v, runtimeUID)
			}
			if v := firstInt(sc.RunAsGroup, psc.RunAsGroup); v != runtimeUID {
				t.Errorf("%s: runAsGroup %d, want %d", where, v, runtimeUID)
			}
			prof := sc.SeccompProfile
			if prof == nil {
				prof = psc.SeccompProfile
			}
			if prof == nil || prof.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile is not RuntimeDefault", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("%s: capabilities must drop ALL and add none: %+v", where, sc.Capabilities)
			}
		}
	}
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			for _, w := range render(t, dir).workloads() {
				check(t, w.kind+"/"+w.name, w.spec)
			}
		})
	}
	t.Run("admin", func(t *testing.T) { check(t, "gateway-admin", adminPod(t).Spec) })
	// The namespace refuses what this test would miss in a pod created by
	// hand.
	ns := render(t, "base").namespaces[0]
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
	}
}

func firstBool(ps ...*bool) bool {
	for _, p := range ps {
		if p != nil {
			return *p
		}
	}
	return false
}

func firstInt(ps ...*int64) int64 {
	for _, p := range ps {
		if p != nil {
			return *p
		}
	}
	return -1
}

// TestProbes: the gateway and the key service are probed for readiness on
// /readyz and for liveness on /healthz, on the port their -addr listens on
// (HTTPS for the key service, whose -addr serves TLS); the egress proxy,
// which serves CONNECT only, on its listening port.
func TestProbes(t *testing.T) {
	cases := []struct {
		component, port string
		scheme          corev1.URIScheme
	}{
		{"gateway", "8080", corev1.URISchemeHTTP},
		{"keyservice", "8443", corev1.URISchemeHTTPS},
	}
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			for _, tc := range cases {
				c := b.workload(t, tc.component).spec.Containers[0]
				if got := listenPort(t, c); got != tc.port {
					t.Fatalf("%s listens on %s, want %s", tc.component, got, tc.port)
				}
				for _, p := range []struct {
					kind, path string
					probe      *corev1.Probe
				}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
					if p.probe == nil || p.probe.HTTPGet == nil {
						t.Errorf("%s: no HTTP %s probe", tc.component, p.kind)
						continue
					}
					g := p.probe.HTTPGet
					if g.Path != p.path {
						t.Errorf("%s: %s probe on %s, want %s", tc.component, p.kind, g.Path, p.path)
					}
					if resolvePort(c, g.Port.String()) != tc.port {
						t.Errorf("%s: %s probe on port %s, which is not %s", tc.component, p.kind, g.Port.String(), tc.port)
					}
					if scheme := g.Scheme; scheme != tc.scheme && !(scheme == "" && tc.scheme == corev1.URISchemeHTTP) {
						t.Errorf("%s: %s probe scheme %q, want %s", tc.component, p.kind, scheme, tc.scheme)
					}
				}
				if c.StartupProbe != nil {
					t.Errorf("%s: a startup probe would hold liveness back for nothing: /healthz answers at once", tc.component)
				}
			}
			c := b.workload(t, "egress").spec.Containers[0]
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				if p == nil || p.TCPSocket == nil || resolvePort(c, p.TCPSocket.Port.String()) != listenPort(t, c) {
					t.Errorf("egress: probes must open its listening port %s", listenPort(t, c))
				}
			}
		})
	}
}

// listenPort is the port of the container's -addr flag.
func listenPort(t *testing.T, c corev1.Container) string {
	t.Helper()
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "-addr="); ok {
			_, port, _ := strings.Cut(v, ":")
			return port
		}
	}
	t.Fatalf("%s: no -addr= in its args", c.Name)
	return ""
}

// resolvePort turns a probe's or Service's port (a number or a container
// port's name) into a number.
func resolvePort(c corev1.Container, port string) string {
	for _, p := range c.Ports {
		if p.Name == port {
			return itoa(p.ContainerPort)
		}
	}
	return port
}

func itoa(n int32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestResources: every container requests CPU and memory and is capped in
// memory (figures from BENCHMARKS.md, explained in the manifests).
func TestResources(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			for _, w := range render(t, dir).workloads() {
				for _, c := range w.spec.Containers {
					r := c.Resources
					if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
						t.Errorf("%s/%s: no CPU or memory request", w.name, c.Name)
					}
					if r.Limits.Memory().IsZero() || r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
						t.Errorf("%s/%s: memory limit missing or under the request", w.name, c.Name)
					}
				}
			}
		})
	}
}

// TestDisruptionAndScaling: each workload has one PodDisruptionBudget that
// selects its pods and lets at most one go at a time; the gateway, and only
// the gateway, is scaled by a HorizontalPodAutoscaler that owns its replica
// count; the key service is a StatefulSet that starts its pods in parallel
// (a sealed pod is never ready) and keeps its audit volumes.
func TestDisruptionAndScaling(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			for _, w := range b.workloads() {
				var n int
				for _, p := range b.pdbs {
					sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
					if err != nil {
						t.Fatal(err)
					}
					if !sel.Matches(labels.Set(w.meta.Labels)) {
						continue
					}
					n++
					if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
						t.Errorf("PDB %s: maxUnavailable must be 1", p.Name)
					}
				}
				if n != 1 {
					t.Errorf("%s %s: %d PodDisruptionBudgets select its pods, want 1", w.kind, w.name, n)
				}
			}
			if len(b.hpas) != 1 {
				t.Fatalf("%d HPAs, want 1", len(b.hpas))
			}
			h := b.hpas[0]
			gw := b.workload(t, "gateway")
			if h.Spec.ScaleTargetRef.Kind != gw.kind || h.Spec.ScaleTargetRef.Name != gw.name || h.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
				t.Errorf("HPA targets %+v, want the gateway %s %s", h.Spec.ScaleTargetRef, gw.kind, gw.name)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HPA replicas %v-%d: want at least 2", h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
			for _, d := range b.deployments {
				if d.Name == gw.name && d.Spec.Replicas != nil {
					t.Errorf("the gateway Deployment sets replicas: each apply would undo the HPA")
				}
			}
			if len(b.statefulsets) != 1 {
				t.Fatalf("%d StatefulSets, want the key service's", len(b.statefulsets))
			}
			ks := b.statefulsets[0]
			if ks.Spec.Template.Labels[componentLabel] != "keyservice" || ks.Spec.PodManagementPolicy != "Parallel" {
				t.Errorf("key service StatefulSet: component %q, podManagementPolicy %q", ks.Spec.Template.Labels[componentLabel], ks.Spec.PodManagementPolicy)
			}
			if r := ks.Spec.PersistentVolumeClaimRetentionPolicy; r == nil || r.WhenDeleted != "Retain" || r.WhenScaled != "Retain" {
				t.Errorf("key service: audit volumes must be retained when scaled down or deleted")
			}
			if ks.Spec.Replicas == nil || *ks.Spec.Replicas < 2 {
				t.Errorf("key service: want at least 2 replicas")
			}
		})
	}
}

// TestServicesSelectTheirPods: each Service selects exactly one workload's
// pods, and its target ports are ports those pods declare.
func TestServicesSelectTheirPods(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			for _, s := range b.services {
				var match []workload
				for _, w := range b.workloads() {
					if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.meta.Labels)) {
						match = append(match, w)
					}
				}
				if len(s.Spec.Selector) == 0 || len(match) != 1 {
					t.Errorf("Service %s selects %d workloads, want 1", s.Name, len(match))
					continue
				}
				c := match[0].spec.Containers[0]
				for _, p := range s.Spec.Ports {
					if got := resolvePort(c, p.TargetPort.String()); got == p.TargetPort.String() && p.TargetPort.IntValue() == 0 {
						t.Errorf("Service %s: target port %s is not a port of %s", s.Name, p.TargetPort.String(), match[0].name)
					}
				}
			}
		})
	}
}
