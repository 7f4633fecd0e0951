package images

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/testenv"
)

func TestParseLDD(t *testing.T) {
	debianRedis := `	linux-vdso.so.1 (0x00007ffd4b5f2000)
	libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007fd9cc287000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd9cc0a5000)
	/lib64/ld-linux-x86-64.so.2 (0x00007fd9cca90000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd9cc0a5000)
`
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "ok/loader-kept-vdso-dropped-deduplicated", in: debianRedis, want: []string{
			"/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
		}},
		{name: "error/library-not-found", in: "\tlibfoo.so.1 => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x1)\n", wantErr: true},
		{name: "error/nothing-listed", in: "\tstatically linked\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLDD([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrepareContext(t *testing.T) {
	t.Run("error/unknown-image", func(t *testing.T) {
		err := PrepareContext(context.Background(), t.TempDir(), Image("nginx"), Options{})
		if !errors.Is(err, ErrUnknownImage) {
			t.Fatalf("err = %v, want ErrUnknownImage", err)
		}
	})

	t.Run("ok/static-go-binary", func(t *testing.T) {
		dir := prepare(t, Probe, Options{})
		bin := filepath.Join(dir, "rootfs/usr/local/bin/probe")
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("binary: %v", err)
		}
		defer f.Close()
		// A scratch image has no loader and no libc: the binary must need neither.
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has an ELF interpreter: not static (CGO_ENABLED=0 lost?)")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("binary needs shared libraries %v", libs)
		}
		checkBase(t, dir)
	})

	t.Run("ok/redis-with-its-libraries", func(t *testing.T) {
		if _, err := exec.LookPath("redis-server"); err != nil {
			testenv.Missing(t, "no redis-server binary to copy: %v", err)
		}
		if _, err := exec.LookPath("ldd"); err != nil {
			testenv.Missing(t, "no ldd: %v", err)
		}
		dir := prepare(t, Redis, Options{})
		// redis-cli too: the e2e suite makes a Cluster with it.
		for _, bin := range []string{"usr/bin/redis-server", "usr/bin/redis-cli"} {
			out, err := exec.Command("ldd", filepath.Join(dir, "rootfs", bin)).Output()
			if err != nil {
				t.Fatalf("ldd of the copied %s: %v", bin, err)
			}
			libs, err := ParseLDD(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, lib := range libs {
				fi, err := os.Lstat(filepath.Join(dir, "rootfs", lib))
				if err != nil {
					t.Errorf("library %s of %s not in the context: %v", lib, bin, err)
					continue
				}
				// COPY keeps symlinks as links, which would dangle in the image.
				if !fi.Mode().IsRegular() {
					t.Errorf("library %s is %v, want a regular file", lib, fi.Mode())
				}
			}
		}
		checkBase(t, dir)
	})
}

// TestPrepareKeyServiceHSM: the HSM variant is the key service built with
// cgo and the hsm tag, with its loader and libraries and SoftHSM2's.
func TestPrepareKeyServiceHSM(t *testing.T) {
	for _, tool := range []string{"gcc", "ldd", "softhsm2-util"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "no %s (apt-get install gcc softhsm2): %v", tool, err)
		}
	}
	dir := prepare(t, KeyServiceHSM, Options{})
	bin := filepath.Join(dir, "rootfs/usr/local/bin/keyservice")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	libs, _ := f.ImportedLibraries()
	f.Close()
	if len(libs) == 0 {
		t.Fatal("the HSM key service is static: built without cgo")
	}
	for _, file := range []string{"usr/local/bin/keyservice", strings.TrimPrefix(SoftHSMModule, "/"), "usr/bin/softhsm2-util", "etc/softhsm/softhsm2.conf"} {
		if fi, err := os.Stat(filepath.Join(dir, "rootfs", file)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v", file, err)
		}
	}
	for _, obj := range []string{bin, filepath.Join(dir, "rootfs", SoftHSMModule)} {
		out, err := exec.Command("ldd", obj).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", obj, err)
		}
		needed, err := ParseLDD(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, lib := range needed {
			if fi, err := os.Lstat(filepath.Join(dir, "rootfs", lib)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s needs %s, not in the context as a file: %v", filepath.Base(obj), lib, err)
			}
		}
	}
	// The binary holds the PKCS#11 code (the hsm tag), not only cgo.
	if b, _ := os.ReadFile(bin); !bytes.Contains(b, []byte("C_Initialize")) {
		t.Error("the HSM key service was built without the hsm tag")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data/softhsm/tokens")); err != nil || !fi.IsDir() {
		t.Errorf("data/softhsm/tokens: %v", err)
	}
	checkBase(t, dir)
}

func prepare(t *testing.T, img Image, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := PrepareContext(ctx, dir, img, opts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkBase checks what every context holds besides its program.
func checkBase(t *testing.T, dir string) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(dir, "rootfs/etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), ":65532:65532:") {
		t.Errorf("passwd: %q %v", passwd, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "rootfs/tmp"))
	if err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp: %v %v, want drwxrwxrwt", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || !fi.IsDir() {
		t.Errorf("data/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		t.Errorf("Dockerfile: %v", err)
	}
}

// TestDockerfiles pins what every image promises: an empty base, an
// unprivileged user, and no EXPOSE (testcontainers and `docker run -P`
// publish every EXPOSEd port on the host; the key service must have none).
func TestDockerfiles(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range All() {
		t.Run(string(img), func(t *testing.T) {
			f, err := os.Open(filepath.Join(root, "deploy", string(img)+".Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var from, user []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
					continue
				}
				switch strings.ToUpper(fields[0]) {
				case "FROM":
					from = append(from, strings.Join(fields[1:], " "))
				case "USER":
					user = append(user, strings.Join(fields[1:], " "))
				case "EXPOSE", "RUN":
					t.Errorf("%s instruction: %s", fields[0], sc.Text())
				}
			}
			if !slices.Equal(from, []string{"scratch"}) {
				t.Errorf("FROM %q, want only scratch (nothing can be pulled)", from)
			}
			if !slices.Equal(user, []string{"65532:65532"}) {
				t.Errorf("USER %q, want 65532:65532", user)
			}
		})
	}
}

// TestImagePrograms pins what goes in each image: every image but Redis is
// one Go main package whose binary is named after it, and the programs that
// run in the public zone (gateway, shop) and the egress proxy link no card-number or key code
// (docs/contracts.md, trust zones). The admin tool does link it (its demo is the whole product),
// which is why it is an image of its own and not a second binary in the
// gateway's.
func TestImagePrograms(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	goList := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return string(out)
	}
	forbidden := []string{"/keyservice/card", "/keyservice/keyring", "/keyservice/unwrap", "/keyservice/seal"}
	for _, img := range All() {
		if img == Redis || img == KeyServiceHSM {
			continue // not a static build of a main package
		}
		t.Run(string(img), func(t *testing.T) {
			pkg, bin, ok := goPackage(img)
			if !ok {
				t.Fatalf("no program for %s", img)
			}
			if name := strings.TrimSpace(goList("-f", "{{.Name}}", pkg)); name != "main" || filepath.Base(pkg) != bin {
				t.Errorf("%s: package %q named %s, binary %q (go build -o DIR names binaries after the directory)", img, pkg, name, bin)
			}
			// The egress proxy sits on an outside network: it carries no
			// card code either (it only sees host, port and TLS bytes).
			if img != Gateway && img != Shop && img != Egress {
				return
			}
			for _, dep := range strings.Fields(goList("-deps", pkg)) {
				for _, f := range forbidden {
					if strings.HasSuffix(dep, f) {
						t.Errorf("%s links %s: the %s image must hold no card-number or key code", pkg, dep, img)
					}
				}
			}
		})
	}
}

// TestBuildShowsProgress: a build says what it is doing and how long each
// step took (the compile, then each image), on Progress, so `make images` and
// the e2e suite's first run are never minutes of silence.
func TestBuildShowsProgress(t *testing.T) {
	var progress bytes.Buffer
	var built []string
	err := Build(context.Background(), Options{
		Images:   []Image{Probe, Egress},
		Tag:      func(img Image) string { return "test/" + string(img) + ":x" },
		Progress: &progress,
		Builder: func(_ context.Context, dir, tag string, _ io.Writer) error {
			if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
				return err
			}
			built = append(built, tag)
			return nil
		},
		Docker: "true", // no image to inspect or remove
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^images: compiling ./cmd/egress ./e2e/probe in one go build: about 1-3 min on a cold build cache`),
		regexp.MustCompile(`^images: compiled in \d`),
		regexp.MustCompile(`^images: \[1/2\] test/probe:x: docker build \.\.\.$`),
		regexp.MustCompile(`^images: \[1/2\] test/probe:x built in \S+ \(\S+ so far\)$`),
		regexp.MustCompile(`^images: \[2/2\] test/egress:x: docker build \.\.\.$`),
		regexp.MustCompile(`^images: \[2/2\] test/egress:x built in \S+ \(\S+ so far\)$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("progress:\n%s", progress.String())
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d %q, want %s", i+1, lines[i], re)
		}
	}
	if len(built) != 2 {
		t.Errorf("built %v", built)
	}
}
