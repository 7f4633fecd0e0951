# Blindgate gateway: one static Go binary on an empty base image (no shell,
# no package manager), running as uid 65532. It holds no private key and no
# card-number code; see docs and DESIGN.md for its trust zone.
#
# The context (rootfs/ with the binary, data/) is prepared on the host by
# deploy/images. Build with `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
# Writable state (the embedded bbolt store when Redis is not configured).
COPY --chown=65532:65532 data/ /var/lib/blindgate/
USER 65532:65532
WORKDIR /var/lib/blindgate
ENTRYPOINT ["/usr/local/bin/gateway"]
