// Package images prepares the Docker build contexts of Blindgate's images and
// builds them, with the docker CLI by default or a caller's Builder (the e2e
// suite builds through testcontainers-go).
//
// No base image can be pulled where Blindgate is built and tested, so every
// image is FROM scratch and nothing is compiled inside Docker: this package
// cross-compiles static Go binaries (CGO_ENABLED=0) on the host, or copies a
// host binary with the shared libraries ldd lists (Redis), into a context
// directory beside deploy/<image>.Dockerfile. The images hold no shell and run
// as the unprivileged uid RuntimeUID.
//
// Used by `go run ./cmd/images` (make images) and by the e2e suite; the images
// are what docker-compose.yml runs.
package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Image names one of the images this package can build.
type Image string

// The images. Admin holds the `blindgate` admin tool (merchants, operators,
// keygen, rewrap) for one-shot containers next to the gateway: it is an image
// of its own because that binary also links the demo, that is the whole key
// service with its card-number code, which the gateway image must not carry
// (docs/contracts.md: the gateway holds no code that parses a PAN). Shop is the demo
// merchant of docker-compose.yml. Egress is the key zone's CONNECT proxy to
// the forward destinations (cmd/egress), on the key zone and an outside
// network. Probe is test-only: a static HTTP GET client
// the e2e suite runs inside a network to prove what a container there can and
// cannot reach. Processor is a processor stand-in (deploy/processor) that
// forwards reach, for the e2e suite and trying forwarding with compose.
const (
	KeyService Image = "keyservice"
	Gateway    Image = "gateway"
	Admin      Image = "admin"
	Shop       Image = "shop"
	Redis      Image = "redis"
	Probe      Image = "probe"
	Egress     Image = "egress"
	Processor  Image = "processor"
	// KeyServiceHSM is the key service built with cgo and -tags hsm (the
	// HSM seal over PKCS#11), with the shared libraries ldd lists for it and
	// Debian's SoftHSM2 (module and softhsm2-util) to try it: a dynamic
	// binary needs a loader and libc, so it cannot be the static default.
	// Production mounts its HSM vendor's module (and that module's
	// libraries) and points -hsm-module at it.
	KeyServiceHSM Image = "keyservice-hsm"
)

// SoftHSMModule is where the keyservice-hsm image holds SoftHSM2's module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// RuntimeUID is the user (and group) every image runs as: an unprivileged id
// that owns nothing on the host (distroless calls it "nonroot").
const RuntimeUID = 65532

// Defaults returns the images built when Options.Images is empty: what
// docker-compose.yml runs. Redis is not among them: compose pulls
// redis:7-alpine, and the Redis image (a copy of the host's redis-server) is
// for machines without a registry (`make images-redis`).
func Defaults() []Image { return []Image{KeyService, Gateway, Admin, Shop, Egress} }

// All returns every image this package knows, for flag validation.
func All() []Image {
	return []Image{KeyService, Gateway, Admin, Shop, Redis, Probe, Egress, Processor, KeyServiceHSM}
}

// DefaultTag is the tag an image gets when Options.Tag is nil.
func DefaultTag(img Image) string { return "blindgate/" + string(img) + ":dev" }

// ErrUnknownImage is returned for an Image this package cannot build.
var ErrUnknownImage = errors.New("images: unknown image")

// goPackage returns the main package (relative to the module root) of an
// image made of one static Go binary, and the binary's name under
// /usr/local/bin.
func goPackage(img Image) (pkg, binary string, ok bool) {
	switch img {
	case KeyService:
		return "./cmd/keyservice", "keyservice", true
	case Gateway:
		return "./cmd/gateway", "gateway", true
	case Admin:
		return "./cmd/blindgate", "blindgate", true
	case Shop:
		return "./deploy/shop", "shop", true
	case Probe:
		return "./e2e/probe", "probe", true
	case Egress:
		return "./cmd/egress", "egress", true
	case Processor:
		return "./deploy/processor", "processor", true
	}
	return "", "", false
}

// Builder builds the image tagged tag from a prepared context directory
// (Dockerfile at its root). The e2e suite passes one that builds through
// testcontainers-go; nil means the docker CLI.
type Builder func(ctx context.Context, contextDir, tag string, log io.Writer) error

// Options configure PrepareContext and Build.
type Options struct {
	// Root is the module root (the directory holding go.mod and deploy/).
	// Empty: found by walking up from the working directory.
	Root string
	// Images to build; empty means Defaults().
	Images []Image
	// Tag names the image built for img; nil means DefaultTag.
	Tag func(img Image) string
	// Docker is the docker CLI to run; empty means "docker".
	Docker string
	// Go is the go command used to compile; empty means "go".
	Go string
	// RedisServer is the host redis-server binary copied into the Redis
	// image; empty means the one on $PATH.
	RedisServer string
	// Log receives build output (go build, docker build); nil discards it.
	Log io.Writer
	// Progress receives one line per step with its elapsed time (compiling,
	// then each image), so a build of minutes is never silent; nil discards.
	Progress io.Writer
	// Builder runs the image build; nil means `docker build` (Docker).
	Builder Builder
	// KeepPaths compiles without -trimpath. Only for images that are not
	// shipped (the e2e suite's): with CGO_ENABLED=0 in the environment,
	// their packages then reuse what `go test ./...` already compiled.
	KeepPaths bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		root, err := ModuleRoot()
		if err != nil {
			return o, err
		}
		o.Root = root
	}
	if len(o.Images) == 0 {
		o.Images = Defaults()
	}
	if o.Tag == nil {
		o.Tag = DefaultTag
	}
	if o.Docker == "" {
		o.Docker = "docker"
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Builder == nil {
		o.Builder = cliBuilder(o.Docker)
	}
	return o, nil
}

// ModuleRoot walks up from the working directory to the directory holding
// go.mod, so the e2e suite (run from e2e/) and cmd/images agree on paths.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("images: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build prepares a context for each requested image in a temporary directory
// and builds it with opts.Builder, tagging the result with opts.Tag(img).
// The Go binaries of all requested images are compiled by one `go build`
// (packages they share are compiled once, using every core); images are then
// built in order, and the first failure stops the build.
func Build(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	dirs := make(map[Image]string, len(opts.Images))
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	for _, img := range opts.Images {
		d, err := os.MkdirTemp("", "blindgate-image-"+string(img)+"-")
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		dirs[img] = d
	}
	start := time.Now()
	if err := prepareContexts(ctx, dirs, opts); err != nil {
		return err
	}
	n := len(opts.Images)
	for i, img := range opts.Images {
		began := time.Now()
		fmt.Fprintf(opts.Progress, "images: [%d/%d] %s: docker build ...\n", i+1, n, opts.Tag(img))
		if err := buildOne(ctx, img, dirs[img], opts); err != nil {
			return err
		}
		fmt.Fprintf(opts.Progress, "images: [%d/%d] %s built in %s (%s so far)\n", i+1, n, opts.Tag(img), since(began), since(start))
	}
	return nil
}

// since is the time since t, rounded for a progress line.
func since(t time.Time) time.Duration {
	d := time.Since(t)
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func buildOne(ctx context.Context, img Image, dir string, opts Options) error {
	tag := opts.Tag(img)
	previous := imageID(ctx, opts.Docker, tag)
	if err := opts.Builder(ctx, dir, tag, opts.Log); err != nil {
		return err
	}
	// Every source change leaves the previous build behind; remove it so
	// repeated runs (each e2e run rebuilds) do not fill the disk, but only
	// when no tag names it any more (it may also be blindgate/x:dev).
	// Best effort: a container may still use it.
	if previous != "" && previous != imageID(ctx, opts.Docker, tag) && inspect(ctx, opts.Docker, previous, "{{len .RepoTags}}") == "0" {
		_ = exec.CommandContext(ctx, opts.Docker, "image", "rm", previous).Run()
	}
	return nil
}

// cliBuilder builds with `docker build`.
func cliBuilder(docker string) Builder {
	return func(ctx context.Context, dir, tag string, log io.Writer) error {
		cmd := exec.CommandContext(ctx, docker, "build", "--tag", tag, "--file", filepath.Join(dir, "Dockerfile"), dir)
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, log)
		cmd.Stderr = io.MultiWriter(&out, log)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("images: docker build %s: %w\n%s", tag, err, tail(out.String(), 4096))
		}
		return nil
	}
}

// imageID is the ID of the image tagged tag, or "" if there is none.
func imageID(ctx context.Context, docker, tag string) string {
	return inspect(ctx, docker, tag, "{{.Id}}")
}

func inspect(ctx context.Context, docker, ref, format string) string {
	out, err := exec.CommandContext(ctx, docker, "image", "inspect", "--format", format, ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// PrepareContext fills dir (which should be empty) with the build context of
// img: the Dockerfile copied from deploy/<img>.Dockerfile, a rootfs/ tree
// copied to / with root ownership, and a data/ tree copied with RuntimeUID
// ownership (the image's writable directory).
func PrepareContext(ctx context.Context, dir string, img Image, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	return prepareContexts(ctx, map[Image]string{img: dir}, opts)
}

// prepareContexts prepares the context of each image in its directory.
func prepareContexts(ctx context.Context, dirs map[Image]string, opts Options) error {
	var pkgs []string
	for img := range dirs {
		if pkg, _, ok := goPackage(img); ok {
			pkgs = append(pkgs, pkg)
		} else if img != Redis && img != KeyServiceHSM {
			return fmt.Errorf("%w: %q", ErrUnknownImage, img)
		}
	}
	bin := ""
	if len(pkgs) > 0 {
		var err error
		if bin, err = os.MkdirTemp("", "blindgate-bin-"); err != nil {
			return fmt.Errorf("images: %w", err)
		}
		defer os.RemoveAll(bin)
		slices.Sort(pkgs)
		// The long step of a first build (a cold cache compiles every
		// dependency); later ones reuse Go's build cache and take seconds.
		began := time.Now()
		fmt.Fprintf(opts.Progress, "images: compiling %s in one go build: about 1-3 min on a cold build cache, seconds after ...\n", strings.Join(pkgs, " "))
		if err := goBuild(ctx, bin, pkgs, opts); err != nil {
			return err
		}
		fmt.Fprintf(opts.Progress, "images: compiled in %s\n", since(began))
	}
	for img, dir := range dirs {
		rootfs := filepath.Join(dir, "rootfs")
		if err := prepareBase(dir); err != nil {
			return err
		}
		var err error
		if _, name, ok := goPackage(img); ok {
			err = copyResolved(filepath.Join(bin, name), filepath.Join(rootfs, "usr/local/bin", name), 0o755)
		} else if img == KeyServiceHSM {
			fmt.Fprintf(opts.Progress, "images: compiling the HSM key service (cgo, -tags hsm) with its libraries ...\n")
			err = prepareKeyServiceHSM(ctx, dir, opts)
		} else {
			fmt.Fprintf(opts.Progress, "images: copying the host's redis-server and its libraries ...\n")
			err = prepareRedis(ctx, rootfs, opts)
		}
		if err != nil {
			return err
		}
		df, err := os.ReadFile(filepath.Join(opts.Root, "deploy", string(img)+".Dockerfile"))
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		if err := writeFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// prepareBase lays out what every context holds besides its program.
func prepareBase(dir string) error {
	rootfs, data := filepath.Join(dir, "rootfs"), filepath.Join(dir, "data")
	for _, d := range []string{filepath.Join(rootfs, "etc"), data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("images: %w", err)
		}
	}
	// Programs that look up their own user (and operators running `id`
	// equivalents) need it named; nothing else of /etc is in the image.
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/nonexistent:/sbin/nologin\n", RuntimeUID, RuntimeUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", RuntimeUID)
	if err := writeFile(filepath.Join(rootfs, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(rootfs, "etc/group"), []byte(group), 0o644); err != nil {
		return err
	}
	// Go's os.TempDir and Redis' rewrite temp files expect a writable /tmp;
	// the sticky bit keeps it safe should a second user ever appear.
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o755); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return nil
}

// goBuild compiles static, stripped, path-free binaries for Linux on the
// host's architecture (the Docker engine is assumed to be local) into the
// directory out, each named after its package's last path element.
func goBuild(ctx context.Context, out string, pkgs []string, opts Options) error {
	args := []string{"build", "-trimpath"}
	if opts.KeepPaths {
		args = args[:1]
	}
	args = append(append(args, "-ldflags=-s -w", "-o", out+string(filepath.Separator)), pkgs...)
	cmd := exec.CommandContext(ctx, opts.Go, args...)
	cmd.Dir = opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, opts.Log)
	cmd.Stderr = io.MultiWriter(&buf, opts.Log)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("images: go build %s: %w\n%s", strings.Join(pkgs, " "), err, tail(buf.String(), 4096))
	}
	return nil
}

// prepareRedis copies the host's redis-server and redis-cli and every shared
// object that ldd lists for them, each at the path ldd printed (the dynamic
// loader included), so the binaries run unchanged on an empty base image.
func prepareRedis(ctx context.Context, rootfs string, opts Options) error {
	bin := opts.RedisServer
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return fmt.Errorf("images: the redis image copies the host's redis-server, and none is installed (apt-get install redis-server, or set BLINDGATE_E2E_REDIS_IMAGE): %w", err)
		}
		bin = p
	}
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("images: ldd %s: %w", bin, err)
	}
	libs, err := ParseLDD(out)
	if err != nil {
		return err
	}
	if err := copyResolved(bin, filepath.Join(rootfs, "usr/bin/redis-server"), 0o755); err != nil {
		return err
	}
	for _, lib := range libs {
		if err := copyResolved(lib, filepath.Join(rootfs, lib), 0o755); err != nil {
			return err
		}
	}
	// redis-cli makes a Cluster (`redis-cli --cluster create`) and reads
	// INFO from inside the zone, where nothing is published. Debian's
	// redis-server package depends on redis-tools, which carries it.
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return fmt.Errorf("images: the redis image carries the host's redis-cli, and none is installed (apt-get install redis-tools): %w", err)
	}
	return copyWithLibraries(ctx, cli, rootfs, "/usr/bin/redis-cli")
}

// prepareKeyServiceHSM builds the key service with cgo and the hsm tag and
// copies it with the shared objects ldd lists, plus SoftHSM2's module,
// softhsm2-util and theirs, and a softhsm2.conf keeping tokens under the
// data directory.
func prepareKeyServiceHSM(ctx context.Context, dir string, opts Options) error {
	rootfs := filepath.Join(dir, "rootfs")
	bin, err := os.MkdirTemp("", "blindgate-hsm-")
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer os.RemoveAll(bin)
	out := filepath.Join(bin, "keyservice")
	args := []string{"build", "-trimpath", "-tags", "hsm", "-ldflags=-s -w", "-o", out, "./cmd/keyservice"}
	if opts.KeepPaths {
		args = append(args[:1], args[2:]...) // shares the cgo test build's cache
	}
	cmd := exec.CommandContext(ctx, opts.Go, args...)
	cmd.Dir = opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&buf, opts.Log), io.MultiWriter(&buf, opts.Log)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("images: go build -tags hsm ./cmd/keyservice (cgo: needs gcc): %w\n%s", err, tail(buf.String(), 4096))
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return fmt.Errorf("images: the keyservice-hsm image carries SoftHSM2, and none is installed (apt-get install softhsm2): %w", err)
	}
	for src, dst := range map[string]string{out: "/usr/local/bin/keyservice", SoftHSMModule: SoftHSMModule, util: "/usr/bin/softhsm2-util"} {
		if err := copyWithLibraries(ctx, src, rootfs, dst); err != nil {
			return err
		}
	}
	// softhsm2-util loads the module by its multiarch path, of which
	// SoftHSMModule is a link on Debian: the file is at both.
	if real, err := filepath.EvalSymlinks(SoftHSMModule); err == nil && real != SoftHSMModule {
		if err := copyResolved(real, filepath.Join(rootfs, real), 0o755); err != nil {
			return err
		}
	}
	conf := "directories.tokendir = /var/lib/blindgate/softhsm/tokens/\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := writeFile(filepath.Join(rootfs, "etc/softhsm/softhsm2.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(dir, "data/softhsm/tokens"), 0o755)
}

// copyWithLibraries copies a dynamically linked file to the image path dst
// under rootfs, and every shared object ldd lists for it to the path ldd
// printed.
func copyWithLibraries(ctx context.Context, src, rootfs, dst string) error {
	out, err := exec.CommandContext(ctx, "ldd", src).Output()
	if err != nil {
		return fmt.Errorf("images: ldd %s: %w", src, err)
	}
	libs, err := ParseLDD(out)
	if err != nil {
		return err
	}
	if err := copyResolved(src, filepath.Join(rootfs, dst), 0o755); err != nil {
		return err
	}
	for _, lib := range libs {
		if err := copyResolved(lib, filepath.Join(rootfs, lib), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// ParseLDD returns the absolute paths of the shared objects in ldd output,
// the dynamic loader included and the kernel's vDSO (which has no file)
// excluded. A library ldd could not find is an error: the image would not run.
func ParseLDD(out []byte) ([]string, error) {
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("images: ldd: missing library: %s", line)
		}
		path := line
		if _, after, ok := strings.Cut(line, "=>"); ok {
			path = strings.TrimSpace(after)
		}
		if i := strings.Index(path, " ("); i >= 0 {
			path = path[:i]
		}
		if !strings.HasPrefix(path, "/") {
			continue // linux-vdso.so.1 and the like
		}
		if !slices.Contains(libs, path) {
			libs = append(libs, path)
		}
	}
	if len(libs) == 0 {
		return nil, errors.New("images: ldd listed no libraries (a static binary needs no Redis special case)")
	}
	return libs, nil
}

// copyResolved copies the file src points to (following symlinks, which COPY
// in a Dockerfile would keep as dangling links) to dst as a regular file.
func copyResolved(src, dst string, mode os.FileMode) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return writeFile(dst, b, mode)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
