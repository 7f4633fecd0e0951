package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// builds are the kustomizations an installation applies: the base and every
// overlay. TestEveryOverlayIsListed keeps this list complete.
var builds = []string{
	"base",
	"overlays/redis-sentinel",
	"overlays/redis-cluster",
	"overlays/bitnami-redis",
	"overlays/hsm",
}

// strict decodes into the API types and refuses unknown and duplicate
// fields, and kinds the scheme does not know.
var strict = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// bundle is one rendered build, decoded.
type bundle struct {
	name         string
	objects      []runtime.Object
	namespaces   []*corev1.Namespace
	deployments  []*appsv1.Deployment
	statefulsets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	pvcs         []*corev1.PersistentVolumeClaim
	accounts     []*corev1.ServiceAccount
	policies     []*networkingv1.NetworkPolicy
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
}

var (
	renderMu sync.Mutex
	rendered = map[string]*bundle{}
)

// render builds dir with kustomize (in process: krusty, the library behind
// `kubectl kustomize`) and decodes every object strictly.
func render(t *testing.T, dir string) *bundle {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if b, ok := rendered[dir]; ok {
		return b
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.FromSlash(dir))
	if err != nil {
		t.Fatalf("%s: kustomize: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	b, err := decodeAll(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	rendered[dir] = b
	return b
}

// decodeAll splits a YAML stream and decodes each document strictly.
func decodeAll(name string, stream []byte) (*bundle, error) {
	b := &bundle{name: name}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		b.objects = append(b.objects, obj)
		switch o := obj.(type) {
		case *corev1.Namespace:
			b.namespaces = append(b.namespaces, o)
		case *appsv1.Deployment:
			b.deployments = append(b.deployments, o)
		case *appsv1.StatefulSet:
			b.statefulsets = append(b.statefulsets, o)
		case *corev1.Service:
			b.services = append(b.services, o)
		case *corev1.ConfigMap:
			b.configMaps = append(b.configMaps, o)
		case *corev1.PersistentVolumeClaim:
			b.pvcs = append(b.pvcs, o)
		case *corev1.ServiceAccount:
			b.accounts = append(b.accounts, o)
		case *networkingv1.NetworkPolicy:
			b.policies = append(b.policies, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		default:
			return nil, fmt.Errorf("%s: document %d: %s is not a kind these manifests should hold", name, i, gvk)
		}
	}
	return b, nil
}

// workload is a pod template with the object that owns it.
type workload struct {
	kind, name, namespace string
	meta                  metav1.ObjectMeta
	spec                  corev1.PodSpec
}

func (b *bundle) workloads() []workload {
	var ws []workload
	for _, d := range b.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Namespace, d.Spec.Template.ObjectMeta, d.Spec.Template.Spec})
	}
	for _, s := range b.statefulsets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Namespace, s.Spec.Template.ObjectMeta, s.Spec.Template.Spec})
	}
	return ws
}

// workload returns the one workload of that component.
func (b *bundle) workload(t *testing.T, component string) workload {
	t.Helper()
	var found []workload
	for _, w := range b.workloads() {
		if w.meta.Labels[componentLabel] == component {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d workloads of component %q, want 1", b.name, len(found), component)
	}
	return found[0]
}

func (b *bundle) configMap(name string) *corev1.ConfigMap {
	for _, c := range b.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const (
	nameLabel      = "app.kubernetes.io/name"
	componentLabel = "app.kubernetes.io/component"
	namespace      = "blindgate"
	runtimeUID     = 65532 // deploy/images.RuntimeUID: the images' user
)

func TestEveryBuildDecodesStrictly(t *testing.T) {
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			b := render(t, dir)
			kinds := map[string]int{}
			for _, o := range b.objects {
				kinds[fmt.Sprintf("%T", o)]++
				m, err := metaOf(o)
				if err != nil {
					t.Fatal(err)
				}
				if _, ns := o.(*corev1.Namespace); !ns && m.GetNamespace() != namespace {
					t.Errorf("%T %s is in namespace %q, want %q", o, m.GetName(), m.GetNamespace(), namespace)
				}
			}
			want := map[string]int{
				"*v1.Namespace": 1, "*v1.Deployment": 2, "*v1.StatefulSet": 1, "*v1.Service": 4,
				"*v1.ConfigMap": 3, "*v1.PersistentVolumeClaim": 1, "*v1.ServiceAccount": 3,
				"*v1.PodDisruptionBudget": 3, "*v2.HorizontalPodAutoscaler": 1,
			}
			for k, n := range want {
				if kinds[k] != n {
					t.Errorf("%d objects of %s, want %d", kinds[k], k, n)
				}
			}
			if len(b.policies) < 6 {
				t.Errorf("%d NetworkPolicies, want at least 6", len(b.policies))
			}
		})
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	return m, nil
}

// TestStrictDecodingRefuses: the decoder the other tests rely on does refuse
// a misspelt field, a repeated one and a kind outside the list, so their
// passing means something.
func TestStrictDecodingRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown-field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"duplicate-field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  type: ClusterIP\n  type: NodePort\n",
		"wrong-type":      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: 8080\n",
		"unknown-kind":    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeAll(name, []byte(doc)); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	if _, err := decodeAll("good", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  type: ClusterIP\n")); err != nil {
		t.Fatalf("a valid Service: %v", err)
	}
}

// TestEveryOverlayIsListed: an overlay added to the directory is rendered
// by these tests too.
func TestEveryOverlayIsListed(t *testing.T) {
	dirs, err := filepath.Glob("overlays/*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range dirs {
		got = append(got, filepath.ToSlash(filepath.Dir(d)))
	}
	listed := map[string]bool{}
	for _, b := range builds {
		listed[b] = true
	}
	sort.Strings(got)
	if len(got) == 0 {
		t.Fatal("no overlays found")
	}
	for _, d := range got {
		if !listed[d] {
			t.Errorf("%s is not in builds", d)
		}
	}
	if len(got)+1 != len(builds) {
		t.Errorf("builds lists %d, the directory has the base and %d overlays: %s", len(builds), len(got), strings.Join(got, ", "))
	}
}
