# Blindgate. Images are FROM scratch and their binaries are compiled on the
# host (no base image can be pulled); see deploy/images.
GO ?= go
TAG ?= dev

.PHONY: images images-context e2e

## images: build blindgate/{keyservice,gateway,redis}:$(TAG) with docker
images:
	$(GO) run ./cmd/images -tag $(TAG)

## images-context: only prepare the build contexts in build/images/<image>
images-context:
	$(GO) run ./cmd/images -context build/images

## e2e: the end-to-end suite (Docker; Chromium for the browser scenarios)
e2e:
	$(GO) test -count=1 ./e2e/...
