# Blindgate. Images are FROM scratch and their binaries are compiled on the
# host (no base image needs pulling); see deploy/images.
GO ?= go
TAG ?= dev
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: images images-redis images-hsm images-context e2e compose-config

## images: build blindgate/{keyservice,gateway,admin,shop,egress}:$(TAG), what docker-compose.yml runs
images:
	$(GO) run ./cmd/images -tag $(TAG)

## images-redis: blindgate/redis:$(TAG) from the host's redis-server, for machines
## with no registry (then: export BLINDGATE_REDIS_IMAGE=blindgate/redis:$(TAG))
images-redis:
	$(GO) run ./cmd/images -images redis -tag $(TAG)

## images-hsm: blindgate/keyservice-hsm:$(TAG), the key service with the HSM seal
## (cgo, -tags hsm; needs gcc and softhsm2 on the host): docs/KEYS.md
images-hsm:
	$(GO) run ./cmd/images -images keyservice-hsm -tag $(TAG)

## images-context: only prepare the build contexts in build/images/<image>
images-context:
	$(GO) run ./cmd/images -context build/images

## e2e: the end-to-end suite (Docker; Chromium for the browser scenarios)
e2e:
	$(GO) test -count=1 -timeout 15m ./e2e/...

## compose-config: check docker-compose.yml as compose reads it
compose-config:
	$(COMPOSE) -f docker-compose.yml config -q
