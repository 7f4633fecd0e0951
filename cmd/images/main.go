// Command images builds Blindgate's Docker images without make:
//
//	go run ./cmd/images [-images keyservice,gateway,admin,shop] [-tag dev] [-v]
//	go run ./cmd/images -images redis   # Redis from the host's redis-server (no registry)
//	go run ./cmd/images -context DIR   # only prepare build contexts in DIR/<image>
//
// Images are FROM scratch; the binaries are compiled on the host (see
// package deploy/images for why) and tagged blindgate/<image>:<tag>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/blindgate/blindgate/deploy/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flags were printed; not a failure
		}
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.String("images", joinImages(images.Defaults()), "comma-separated images to build, from: "+joinImages(images.All()))
	tag := fs.String("tag", "dev", "tag of the built images: blindgate/<image>:<tag>")
	contextDir := fs.String("context", "", "only prepare the build contexts in DIR/<image> (for another builder); run no docker")
	verbose := fs.Bool("v", false, "show go build and docker build output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	imgs, err := parseImages(*list)
	if err != nil {
		return err
	}
	opts := images.Options{
		Images: imgs,
		Tag:    func(img images.Image) string { return "blindgate/" + string(img) + ":" + *tag },
		// A line per step with its time: `make images` takes minutes on a
		// cold build cache and must not look stuck.
		Progress: stderr,
	}
	if *verbose {
		opts.Log = stderr
	}
	start := time.Now()
	if *contextDir != "" {
		for _, img := range imgs {
			dir := filepath.Join(*contextDir, string(img))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			one := opts
			one.Images = []images.Image{img}
			if err := images.PrepareContext(ctx, dir, img, one); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: context in %s\n", img, dir)
		}
		fmt.Fprintf(stdout, "prepared in %s\n", time.Since(start).Round(time.Millisecond))
		return nil
	}
	// One Build for all: their Go binaries compile in one `go build`.
	if err := images.Build(ctx, opts); err != nil {
		return err
	}
	for _, img := range imgs {
		fmt.Fprintf(stdout, "built %s\n", opts.Tag(img))
	}
	fmt.Fprintf(stdout, "in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func parseImages(s string) ([]images.Image, error) {
	var out []images.Image
	for _, name := range strings.Split(s, ",") {
		img := images.Image(strings.TrimSpace(name))
		if img == "" {
			continue
		}
		if !slices.Contains(images.All(), img) {
			return nil, fmt.Errorf("unknown image %q (want %s)", img, joinImages(images.All()))
		}
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, errors.New("no image to build")
	}
	return out, nil
}

func joinImages(imgs []images.Image) string {
	s := make([]string, len(imgs))
	for i, img := range imgs {
		s[i] = string(img)
	}
	return strings.Join(s, ",")
}
