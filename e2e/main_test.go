package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
// engine answers (a failure under CI=true, see testenv).
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
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
	case images.Redis:
		return "BLINDGATE_E2E_REDIS_IMAGE"
	}
	return ""
}

// e2eTag is the tag of images built by the suite; distinct from the :dev
// tags of `make images` so a test run never replaces a developer's image.
func e2eTag(img images.Image) string { return "blindgate/" + string(img) + ":e2e" }

// builtImage is one image of the run: built at most once, by the first test
// that needs it, and shared by all later tests. Building per test would cost
// a go build and a docker build each time and blow the CI time budget.
type builtImage struct {
	once  sync.Once
	ref   string
	err   error
	built time.Duration // 0 when prebuilt
}

// imageSet is the run's images. It is the suite's only shared state: a
// package-level value because Go tests have no other per-run scope, and
// safe because each entry is written once under its sync.Once.
type imageSet struct {
	mu sync.Mutex
	m  map[images.Image]*builtImage
}

var runImages = &imageSet{m: map[images.Image]*builtImage{}}

func (s *imageSet) entry(img images.Image) *builtImage {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[img]
	if !ok {
		e = &builtImage{}
		s.m[img] = e
	}
	return e
}

// needImages returns the references of imgs, building (concurrently) those
// not built yet in this run, and fails the test if one cannot be had.
func needImages(t *testing.T, imgs ...images.Image) map[images.Image]string {
	t.Helper()
	requireDocker(t)
	var wg sync.WaitGroup
	for _, img := range imgs {
		e := runImages.entry(img)
		wg.Go(func() {
			e.once.Do(func() {
				e.ref, e.built, e.err = resolveImage(img)
				if e.err == nil && e.built > 0 {
					t.Logf("image %s: built %s once for this run in %s", img, e.ref, e.built.Round(100*time.Millisecond))
				}
			})
		})
	}
	wg.Wait()
	refs := make(map[images.Image]string, len(imgs))
	for _, img := range imgs {
		e := runImages.entry(img)
		if e.err != nil {
			t.Fatalf("image %s: %v", img, e.err)
		}
		refs[img] = e.ref
	}
	return refs
}

func resolveImage(img images.Image) (string, time.Duration, error) {
	if env := imageOverride(img); env != "" {
		if ref := os.Getenv(env); ref != "" {
			return ref, 0, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	err := images.Build(ctx, images.Options{Images: []images.Image{img}, Tag: e2eTag})
	if err != nil {
		return "", 0, fmt.Errorf("build (set %s to use a prebuilt image): %w", imageOverride(img), err)
	}
	return e2eTag(img), time.Since(start), nil
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
