package kubernetes

import (
	"flag"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	gwapp "github.com/blindgate/blindgate/gateway/app"
	"github.com/blindgate/blindgate/internal/testenv"
	ksapp "github.com/blindgate/blindgate/keyservice/app"
)

// containerEnv is the environment the container starts with: its envFrom
// ConfigMaps (from the build) and its env entries (a fieldRef stands as
// "<fieldPath>").
func containerEnv(t *testing.T, b *bundle, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("%s: envFrom other than a ConfigMap", c.Name)
		}
		cm := b.configMap(from.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("%s: envFrom ConfigMap %s is not in the build", c.Name, from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "<" + e.ValueFrom.FieldRef.FieldPath + ">"
		default:
			t.Fatalf("%s: env %s from something other than a literal or a field", c.Name, e.Name)
		}
	}
	return env
}

// registerer registers a binary's flags, reading their defaults from the
// environment as it is when called (envflag).
type registerer func(*flag.FlagSet)

// flagsReading reports which flag the binary's registration reads from the
// variable name: it sets the variable to values of each flag type in turn
// and looks for a default that moves. "" means none: the binary ignores it.
func flagsReading(t *testing.T, reg registerer, name string) string {
	t.Helper()
	defaults := func() map[string]string {
		fs := flag.NewFlagSet("probe", flag.ContinueOnError)
		reg(fs)
		m := map[string]string{}
		fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.DefValue })
		return m
	}
	old, had := os.LookupEnv(name)
	defer func() {
		if had {
			os.Setenv(name, old)
		} else {
			os.Unsetenv(name)
		}
	}()
	os.Unsetenv(name)
	base := defaults()
	for _, v := range []string{"k8s-test-sentinel", "7", "true", "false", "7s"} {
		os.Setenv(name, v)
		for f, d := range defaults() {
			if d != base[f] {
				return f
			}
		}
	}
	return ""
}

// parse sets env, registers the flags and parses args as the binary does.
func parse(t *testing.T, reg registerer, env map[string]string, args []string) *flag.FlagSet {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("manifest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reg(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("the binary refuses the manifest's args %q: %v", args, err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("args left over after the flags: %q (a typo such as a missing '-'?)", fs.Args())
	}
	return fs
}

// checkEnv: every variable the container sets with the binary's prefix is
// read by one of its flags; other variables are only those the manifests
// themselves use (POD_NAME, for the audit directory).
func checkEnv(t *testing.T, reg registerer, prefix string, env map[string]string) {
	t.Helper()
	for name := range env {
		if !strings.HasPrefix(name, prefix) {
			if name != "POD_NAME" {
				t.Errorf("environment variable %s is neither %s* nor POD_NAME", name, prefix)
			}
			continue
		}
		if flagsReading(t, reg, name) == "" {
			t.Errorf("%s is read by no flag of the binary", name)
		}
	}
}

// mountFor is the volume mount that holds p (the longest mount path that
// contains it) and its volume.
func mountFor(spec corev1.PodSpec, c corev1.Container, p string, claims map[string]bool) (*corev1.VolumeMount, *corev1.Volume) {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return nil, nil
	}
	for i, v := range spec.Volumes {
		if v.Name == best.Name {
			return best, &spec.Volumes[i]
		}
	}
	if claims[best.Name] { // a StatefulSet's volumeClaimTemplate
		return best, &corev1.Volume{Name: best.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: best.Name}}}
	}
	return best, nil
}

// writable are the flags naming files the process writes.
var writable = map[string]bool{"audit-log": true, "audit-checkpoints": true}

// inImage are the flags naming files the image itself carries: the HSM
// vendor's PKCS#11 module, built into the key service image
// (overlays/hsm).
var inImage = map[string]bool{"hsm-module": true}

// checkPaths: every file a flag names (a path, or a file: reference) is on a
// volume, not the image's read-only root: secrets (file: references) on a
// Secret mounted read-only as a whole directory (a subPath mount would never
// see a new version), the files the process writes on a writable persistent
// volume, everything else read-only.
func checkPaths(t *testing.T, fs *flag.FlagSet, spec corev1.PodSpec, c corev1.Container, claims map[string]bool) {
	t.Helper()
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		ref, isRef := strings.CutPrefix(v, "file:")
		p := v
		if isRef {
			p = ref
		}
		if !strings.HasPrefix(p, "/") || inImage[f.Name] {
			if isRef {
				t.Errorf("-%s=%s: a relative file: reference", f.Name, v)
			}
			return
		}
		m, vol := mountFor(spec, c, path.Clean(p), claims)
		if m == nil || vol == nil {
			t.Errorf("-%s=%s: no volume holds it (the root filesystem is read-only)", f.Name, v)
			return
		}
		switch {
		case writable[f.Name]:
			if m.ReadOnly {
				t.Errorf("-%s=%s: on the read-only mount %s", f.Name, v, m.MountPath)
			}
			if vol.PersistentVolumeClaim == nil {
				t.Errorf("-%s=%s: volume %s is not persistent: the audit trail would go with the pod", f.Name, v, vol.Name)
			}
		default:
			if !m.ReadOnly {
				t.Errorf("-%s=%s: mount %s is writable; the process only reads it", f.Name, v, m.MountPath)
			}
			if vol.Secret == nil && vol.ConfigMap == nil {
				t.Errorf("-%s=%s: volume %s is not a Secret or ConfigMap", f.Name, v, vol.Name)
			}
			if m.SubPath != "" || m.SubPathExpr != "" {
				t.Errorf("-%s=%s: mounted with a subPath, which never sees a new version", f.Name, v)
			}
		}
		if isRef && vol.Secret == nil {
			t.Errorf("-%s=%s: a secret reference outside a Secret volume", f.Name, v)
		}
	})
}

// serviceFor is the Service at a URL's host:port, and the component of the
// pods it selects.
func serviceFor(t *testing.T, b *bundle, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s: %v", rawURL, err)
	}
	for _, s := range b.services {
		if s.Name != u.Hostname() {
			continue
		}
		for _, p := range s.Spec.Ports {
			if itoa(p.Port) != u.Port() {
				continue
			}
			for _, w := range b.workloads() {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.meta.Labels)) {
					return w.meta.Labels[componentLabel]
				}
			}
		}
	}
	t.Errorf("%s: no Service %s with port %s selects a workload", rawURL, u.Hostname(), u.Port())
	return ""
}

func pvcTemplates(b *bundle) map[string]bool {
	m := map[string]bool{}
	for _, s := range b.statefulsets {
		for _, c := range s.Spec.VolumeClaimTemplates {
			m[c.Name] = true
		}
	}
	return m
}

// TestGatewayFlags: the gateway's args and environment are flags the
// gateway binary has (cmd/gateway registers exactly gateway/app's
// Config.Flags), they pass its own Validate once the one value an
// installation must supply (the key service's deployment id) is given, and
// without it the gateway refuses to start.
func TestGatewayFlags(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			w := b.workload(t, "gateway")
			c := w.spec.Containers[0]
			var cfg gwapp.Config
			reg := func(fs *flag.FlagSet) { cfg = gwapp.Config{}; cfg.Flags(fs) }
			env := containerEnv(t, b, c)
			checkEnv(t, reg, "BLINDGATE_GW_", env)
			args := c.Args
			if len(args) > 0 && args[0] == "serve" {
				args = args[1:]
			}
			fs := parse(t, reg, env, args)
			checkPaths(t, fs, w.spec, c, pvcTemplates(b))
			if cfg.Audience != "" {
				t.Errorf("the manifests name a key service audience (%q): it is each deployment's own, set by the installation", cfg.Audience)
			}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "keyservice-audience") {
				t.Errorf("without an audience the gateway must refuse to start; Validate: %v", err)
			}
			cfg.Audience = "ks_k8s-test"
			if err := cfg.Validate(); err != nil {
				t.Errorf("gateway Validate: %v", err)
			}
			if cfg.KeyServiceInsecure || cfg.WebhookAllowLoopback || cfg.Store != "redis" {
				t.Errorf("development settings: keyservice-insecure %v, webhook-allow-loopback %v, store %q", cfg.KeyServiceInsecure, cfg.WebhookAllowLoopback, cfg.Store)
			}
			if !strings.HasPrefix(cfg.KeyServiceURL, "https://") || serviceFor(t, b, cfg.KeyServiceURL) != "keyservice" {
				t.Errorf("-keyservice-url %s is not the key service's Service over HTTPS", cfg.KeyServiceURL)
			}
			if cfg.KeyServiceCA == "" {
				t.Errorf("no -keyservice-ca: the key service's certificate would be checked against the system roots")
			}
			if _, port, _ := strings.Cut(cfg.MetricsAddr, ":"); resolvePort(c, "metrics") != port {
				t.Errorf("-metrics-addr %s is not the container's metrics port", cfg.MetricsAddr)
			}
		})
	}
}

// TestKeyServiceFlags: the same for the key service (`keyservice serve`
// registers keyservice/app's Config.Flags), and it starts sealed: no master
// key, no development unseal, TLS on; only the HSM overlay unseals at start,
// through the token. Its public URL is the one the gateway signs for, and
// its egress proxy is the egress Service.
func TestKeyServiceFlags(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			w := b.workload(t, "keyservice")
			c := w.spec.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != "serve" {
				t.Fatalf("key service args %q do not start with serve", c.Args)
			}
			var cfg ksapp.Config
			reg := func(fs *flag.FlagSet) { cfg = ksapp.Config{}; cfg.Flags(fs) }
			env := containerEnv(t, b, c)
			checkEnv(t, reg, "BLINDGATE_KS_", env)
			fs := parse(t, reg, env, c.Args[1:])
			checkPaths(t, fs, w.spec, c, pvcTemplates(b))
			if err := cfg.Validate(); err != nil {
				t.Errorf("key service Validate: %v", err)
			}
			if cfg.MasterKey != "" || cfg.DevUnseal || cfg.DevHTTP || cfg.Audience != "" {
				t.Errorf("the key service must start sealed, over TLS, with its keyring's audience: master-key %q, dev-auto-unseal %v, dev-insecure-http %v, audience %q",
					cfg.MasterKey, cfg.DevUnseal, cfg.DevHTTP, cfg.Audience)
			}
			if got, want := cfg.HSM.Enabled(), dir == "overlays/hsm"; got != want {
				t.Errorf("HSM seal on: %v, want %v", got, want)
			}
			if cfg.Redis.Addrs == ksapp.RedisMemory {
				t.Errorf("in-process limits and replay cache: replicas would not share them")
			}
			var gw gwapp.Config
			gfs := flag.NewFlagSet("gw", flag.ContinueOnError)
			gfs.SetOutput(io.Discard)
			gw.Flags(gfs)
			if err := gfs.Parse(b.workload(t, "gateway").spec.Containers[0].Args); err != nil {
				t.Fatal(err)
			}
			if cfg.PublicURL != gw.KeyServiceURL {
				t.Errorf("-public-url %q is not the URL the gateway calls (%q): every signed request would be refused", cfg.PublicURL, gw.KeyServiceURL)
			}
			if serviceFor(t, b, cfg.EgressProxy) != "egress" {
				t.Errorf("-egress-proxy %s is not the egress proxy's Service", cfg.EgressProxy)
			}
		})
	}
}

// TestEgressFlags: cmd/egress keeps its flags in package main, so the test
// builds it and asks it: every arg and variable of the manifests must be one
// of the flags its -h lists, and its parser must accept them.
func TestEgressFlags(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "go is not on PATH: cannot build cmd/egress")
	}
	bin := filepath.Join(t.TempDir(), "egress")
	if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/blindgate/blindgate/cmd/egress").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/egress: %v\n%s", err, out)
	}
	help := func(env []string, args ...string) string {
		cmd := exec.Command(bin, append(args, "-h")...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput() // -h exits non-zero by design
		return string(out)
	}
	usage := help(nil)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(usage, -1) {
		names[m[1]] = true
	}
	if !names["allow-file"] || !names["addr"] {
		t.Fatalf("cannot read the flags from egress -h:\n%s", usage)
	}
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			c := b.workload(t, "egress").spec.Containers[0]
			var env []string
			for k, v := range containerEnv(t, b, c) {
				flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "BLINDGATE_EGRESS_")), "_", "-")
				if !strings.HasPrefix(k, "BLINDGATE_EGRESS_") || !names[flagName] {
					t.Errorf("variable %s is no egress flag", k)
				}
				env = append(env, k+"="+v)
			}
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !strings.HasPrefix(a, "-") || !names[name] {
					t.Errorf("arg %q is no egress flag (%s)", a, strings.Join(sortedKeys(names), ", "))
				}
			}
			if out := help(env, c.Args...); strings.Contains(out, "provided but not defined") || strings.Contains(out, "invalid value") {
				first, _, _ := strings.Cut(out, "\n")
				t.Errorf("egress refuses the manifest's args: %s", first)
			}
		})
	}
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestAdminPod: the admin pod's variables are the admin commands' (the
// gateway's store flags, and the audit log `merchants|operators add` record
// in), and its files are on its volumes.
func TestAdminPod(t *testing.T) {
	p := adminPod(t)
	c := p.Spec.Containers[0]
	var cfg gwapp.Config
	reg := func(fs *flag.FlagSet) { cfg = gwapp.Config{}; cfg.StoreFlags(fs) }
	src, err := os.ReadFile("../../cmd/blindgate/admin.go")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if flagsReading(t, reg, e.Name) == "" && !strings.Contains(string(src), `envOr("`+e.Name+`"`) {
			t.Errorf("%s is read by no admin command", e.Name)
		}
	}
	fs := parse(t, reg, env, nil)
	fs.String("audit-log", env["BLINDGATE_GW_AUDIT_LOG"], "")
	checkPaths(t, fs, p.Spec, c, nil)
	if err := cfg.ValidateStore(); err != nil || cfg.Store != "redis" {
		t.Errorf("admin store: %q, %v", cfg.Store, err)
	}
	claim := ""
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	b := render(t, "base")
	found := false
	for _, pvc := range b.pvcs {
		found = found || pvc.Name == claim
	}
	if !found {
		t.Errorf("the admin pod's audit claim %q is not one of the base's", claim)
	}
}
