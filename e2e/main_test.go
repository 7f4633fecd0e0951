package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/deploy/images"
	"github.com/blindgate/blindgate/internal/testenv"
)

func TestMain(m *testing.M) {
	// No registry is reachable, so Ryuk (the reaper, pulled from Docker Hub)
	// cannot run: every fixture removes its own containers in t.Cleanup.
	setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
	// Mapped ports are on this machine; the browser needs localhost (a
	// secure context for WebCrypto), never a container address.
	setDefault("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	os.Exit(m.Run())
}

func setDefault(name, value string) {
	if _, ok := os.LookupEnv(name); !ok {
		_ = os.Setenv(name, value)
	}
}

// requireDocker skips the calling test in -short mode and when no Docker
// engine answers; under CI (the CI variable set) both fail it instead (see
// testenv).
func requireDocker(t *testing.T) {
	t.Helper()
	testenv.SkipShort(t, "e2e")
	testenv.Docker(t)
}

// imageOverride names the environment variable that supplies a prebuilt
// image instead of building one.
func imageOverride(img images.Image) string {
	switch img {
	case images.KeyService:
		return "BLINDGATE_KEYSERVICE_IMAGE"
	case images.Gateway:
		return "BLINDGATE_GATEWAY_IMAGE"
	case images.Admin:
		return "BLINDGATE_ADMIN_IMAGE"
	case images.Shop:
		return "BLINDGATE_SHOP_IMAGE"
	case images.Redis:
		return "BLINDGATE_E2E_REDIS_IMAGE"
	case images.Egress:
		return "BLINDGATE_EGRESS_IMAGE"
	}
	return ""
}

// e2eTag is the tag of images built by the suite; distinct from the :dev
// tags of `make images` so a test run never replaces a developer's image.
// BLINDGATE_E2E_TAG (letters, digits, '-', '.', '_') replaces "e2e", so that
// runs from two checkouts on one Docker daemon never run each other's code.
func e2eTag(img images.Image) string {
	tag := "e2e"
	if v := os.Getenv("BLINDGATE_E2E_TAG"); validTag(v) {
		tag = v
	}
	return "blindgate/" + string(img) + ":" + tag
}

func validTag(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// imageSet is the run's images: every image the suite uses, built together
// once per run by the first test that needs any, and shared by all. One
// images.Build compiles all their Go binaries in a single `go build` (the
// packages they share once, every core busy); per-image builds running at
// once would compile the same packages side by side on a 2-core CI machine,
// and per-test builds would blow the CI time budget.
//
// It is the suite's only shared state: a package-level value because Go tests
// have no other per-run scope, and safe because it is written once under its
// sync.Once.
type imageSet struct {
	once sync.Once
	refs map[images.Image]string
	err  error
}

var runImages = &imageSet{}

// needImages returns the references of imgs, building the suite's images on
// first use, and fails the test if one cannot be had.
func needImages(t *testing.T, imgs ...images.Image) map[images.Image]string {
	t.Helper()
	requireDocker(t)
	runImages.once.Do(func() { runImages.refs, runImages.err = resolveImages(t) })
	if runImages.err != nil {
		t.Fatalf("images: %v", runImages.err)
	}
	refs := make(map[images.Image]string, len(imgs))
	for _, img := range imgs {
		ref, ok := runImages.refs[img]
		if !ok {
			t.Fatalf("image %s is not one of the suite's", img)
		}
		refs[img] = ref
	}
	return refs
}

// resolveImages takes each prebuilt image named by its environment variable
// and builds the others.
func resolveImages(t *testing.T) (map[images.Image]string, error) {
	refs := map[images.Image]string{}
	var build []images.Image
	var envs []string
	for _, img := range images.All() {
		if env := imageOverride(img); env != "" {
			envs = append(envs, env)
			if ref := os.Getenv(env); ref != "" {
				refs[img] = ref
				continue
			}
		}
		if img == images.KeyServiceHSM && !hsmBuildable() {
			continue // TestHSMSealImage skips (fails under CI=true)
		}
		if img == images.Redis && localImage(registryRedis) {
			refs[img] = registryRedis
			continue
		}
		build = append(build, img)
	}
	if len(build) == 0 {
		return refs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	// Straight to the test binary's stderr, not t.Log: shown as it happens
	// with -v (or `go test` in this folder), where t.Log would wait for the
	// test's end; `go test ./...` shows it with the package's output.
	fmt.Fprintf(os.Stderr, "e2e: building the suite's images %v once for this run (first run about 2-4 min, later ones under a minute; prebuilt images: %s) ...\n",
		build, strings.Join(envs, ", "))
	if err := images.Build(ctx, images.Options{Images: build, Tag: e2eTag, Builder: testcontainersBuilder, KeepPaths: true, Progress: os.Stderr}); err != nil {
		return nil, fmt.Errorf("build %v (to use prebuilt images set %s): %w", build, strings.Join(envs, ", "), err)
	}
	for _, img := range build {
		refs[img] = e2eTag(img)
	}
	fmt.Fprintf(os.Stderr, "e2e: images built in %s; the scenarios run now (about 1.5 min, two at a time)\n", time.Since(start).Round(time.Second))
	t.Logf("images %v built once for this run in %s", build, time.Since(start).Round(100*time.Millisecond))
	return refs, nil
}

// registryRedis is the Redis image docker-compose.yml defaults to. The suite
// uses it when it is already in the local image store (pulled where a
// registry is reachable) and otherwise builds one from the host's Debian
// redis-server: no test run ever waits on a registry.
const registryRedis = "redis:7-alpine"

func localImage(ref string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false
	}
	defer dc.Close()
	_, err = dc.ImageInspect(ctx, ref)
	return err == nil
}

// testcontainersBuilder builds a prepared context with testcontainers-go
// (FromDockerfile), so the suite needs a Docker engine but no docker CLI.
// KeepImage: the image outlives the build and serves every later test.
func testcontainersBuilder(ctx context.Context, dir, tag string, log io.Writer) error {
	i := strings.LastIndex(tag, ":")
	if i < 0 {
		return fmt.Errorf("build: tag %q has no version", tag)
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer p.Close()
	req := testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context: dir, Dockerfile: "Dockerfile", Repo: tag[:i], Tag: tag[i+1:],
		KeepImage: true, BuildLogWriter: log,
	}}
	if _, err := p.BuildImage(ctx, &req); err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	return nil
}

// artifactDir returns (creating it) the folder for t's artifacts: container
// logs and screenshots, kept for CI to upload when a test fails.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("BLINDGATE_ARTIFACTS")
	if base == "" {
		root, err := images.ModuleRoot()
		if err != nil {
			t.Fatalf("artifacts: %v", err)
		}
		base = filepath.Join(root, "e2e", "artifacts")
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "__", " ", "_", ":", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}

// saveArtifact writes one artifact for a failed test and says where.
func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dir := artifactDir(t)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Logf("artifact %s: %v", name, err)
		return
	}
	t.Logf("artifact saved: %s", path)
}
