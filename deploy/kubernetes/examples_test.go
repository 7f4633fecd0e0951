package kubernetes

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/types"
	k8syaml "sigs.k8s.io/yaml"
)

// TestBitnamiExampleAgrees: examples/bitnami-redis adds the Bitnami redis
// chart (a kustomize helmCharts entry) to overlays/bitnami-redis. The chart
// is not rendered here (no helm binary, no registry); what is checked is
// that the example's kustomization is a valid one and that the chart values
// and the overlay agree on what Blindgate depends on: the release's
// Sentinel addresses (<release>-node-<i>.<release>-headless:26379, one per
// node), the master set, the password Secret and key, Sentinel without a
// password (Blindgate sends none), and the chart's own NetworkPolicy off in
// favour of the base's `redis` policy.
func TestBitnamiExampleAgrees(t *testing.T) {
	raw, err := os.ReadFile("examples/bitnami-redis/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := k8syaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization: %v", err)
	}
	if len(k.HelmCharts) != 1 || len(k.Resources) != 1 || k.Resources[0] != "../../overlays/bitnami-redis" || k.Namespace != namespace {
		t.Fatalf("want one chart on top of ../../overlays/bitnami-redis in %s: %+v", namespace, k)
	}
	hc := k.HelmCharts[0]
	if hc.Name != "redis" || hc.Namespace != namespace || !strings.HasPrefix(hc.Repo, "oci://") || hc.ValuesFile != "values.yaml" {
		t.Errorf("helm chart entry: %+v", hc)
	}
	release := hc.ReleaseName

	var values struct {
		Architecture string `yaml:"architecture"`
		Auth         struct {
			Enabled                   bool   `yaml:"enabled"`
			Sentinel                  bool   `yaml:"sentinel"`
			ExistingSecret            string `yaml:"existingSecret"`
			ExistingSecretPasswordKey string `yaml:"existingSecretPasswordKey"`
		} `yaml:"auth"`
		Sentinel struct {
			Enabled   bool   `yaml:"enabled"`
			MasterSet string `yaml:"masterSet"`
			Quorum    int    `yaml:"quorum"`
		} `yaml:"sentinel"`
		Replica struct {
			ReplicaCount int `yaml:"replicaCount"`
			Persistence  struct {
				Enabled bool   `yaml:"enabled"`
				Size    string `yaml:"size"`
			} `yaml:"persistence"`
		} `yaml:"replica"`
		NetworkPolicy struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"networkPolicy"`
	}
	f, err := os.Open("examples/bitnami-redis/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if values.Architecture != "replication" || !values.Sentinel.Enabled || !values.Auth.Enabled || values.Auth.Sentinel || values.NetworkPolicy.Enabled {
		t.Errorf("values: want replication with Sentinel, Redis auth on, Sentinel auth off, the chart's NetworkPolicy off: %+v", values)
	}
	var want []string
	for i := 0; i < values.Replica.ReplicaCount; i++ {
		want = append(want, fmt.Sprintf("%s-node-%d.%s-headless:26379", release, i, release))
	}

	b := render(t, "overlays/bitnami-redis")
	for _, comp := range []string{"gateway", "keyservice"} {
		w := b.workload(t, comp)
		c := w.spec.Containers[0]
		env := containerEnv(t, b, c)
		prefix := map[string]string{"gateway": "BLINDGATE_GW_", "keyservice": "BLINDGATE_KS_"}[comp]
		if got := env[prefix+"REDIS"]; got != strings.Join(want, ",") {
			t.Errorf("%s: Redis addresses %q, the chart's Sentinels are %q", comp, got, strings.Join(want, ","))
		}
		if got := env[prefix+"REDIS_MASTER"]; got != values.Sentinel.MasterSet {
			t.Errorf("%s: master %q, the chart's masterSet is %q", comp, got, values.Sentinel.MasterSet)
		}
		secret, key := passwordSource(t, w.spec, c)
		if secret != values.Auth.ExistingSecret || key != values.Auth.ExistingSecretPasswordKey {
			t.Errorf("%s: Redis password from Secret %s key %s, the chart reads %s key %s", comp, secret, key, values.Auth.ExistingSecret, values.Auth.ExistingSecretPasswordKey)
		}
	}
	var governed bool
	for _, p := range b.policies {
		if p.Name == "redis" && selects(&p.Spec.PodSelector, map[string]string{nameLabel: "redis", "app.kubernetes.io/instance": release}) {
			governed = true
		}
	}
	if !governed {
		t.Error("no policy of the overlay governs the chart's pods")
	}
}

// passwordSource is the Secret and key the -redis-password file: reference
// reads.
func passwordSource(t *testing.T, spec corev1.PodSpec, c corev1.Container) (secret, key string) {
	t.Helper()
	for _, a := range c.Args {
		ref, ok := strings.CutPrefix(a, "-redis-password=file:")
		if !ok {
			continue
		}
		m, vol := mountFor(spec, c, ref, nil)
		if m == nil || vol == nil || vol.Secret == nil {
			t.Fatalf("%s: -redis-password %s is not on a Secret", c.Name, ref)
		}
		return vol.Secret.SecretName, path.Base(ref)
	}
	t.Fatalf("%s: no -redis-password=file:", c.Name)
	return "", ""
}

// TestOperatorObjectsDocumented: the Secrets the manifests mount are made
// by the operator (their contents are the installation's), so each must be
// described in docs/KUBERNETES.md; the ConfigMaps they read come with the
// build.
func TestOperatorObjectsDocumented(t *testing.T) {
	guide, err := os.ReadFile("../../docs/KUBERNETES.md")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]bool{}
	collect := func(spec corev1.PodSpec) {
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				secrets[v.Secret.SecretName] = true
			}
		}
	}
	for _, dir := range builds {
		b := render(t, dir)
		for _, w := range b.workloads() {
			collect(w.spec)
			for _, v := range w.spec.Volumes {
				if v.ConfigMap != nil && b.configMap(v.ConfigMap.Name) == nil {
					t.Errorf("%s: %s mounts ConfigMap %s, which the build does not make", dir, w.name, v.ConfigMap.Name)
				}
			}
		}
	}
	collect(adminPod(t).Spec)
	var names []string
	for s := range secrets {
		names = append(names, s)
	}
	sort.Strings(names)
	if len(names) < 5 {
		t.Fatalf("only %d Secrets found: %v", len(names), names)
	}
	for _, s := range names {
		if !strings.Contains(string(guide), "`"+s+"`") {
			t.Errorf("Secret %s is mounted but docs/KUBERNETES.md does not say what goes in it", s)
		}
	}
}
