// Package kubernetes holds Blindgate's Kubernetes manifests (a kustomize
// base and overlays, docs/KUBERNETES.md) and, in its tests, the checks that
// render them: every object decodes strictly into the Kubernetes API types,
// the NetworkPolicies draw the trust zones, every flag the manifests pass
// exists in the binaries, and every container runs restricted. No cluster
// is involved: the tests prove what the manifests say, not how a cluster
// runs them. The package has no code, so the Kubernetes libraries the tests
// use are linked into no binary.
package kubernetes
