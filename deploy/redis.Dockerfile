# Redis for the e2e suite and local stacks, without pulling an image: the
# host's Debian redis-server and redis-cli plus the shared libraries ldd lists
# for them (each at its own path, the dynamic loader included), on an empty
# base image. The same binary runs a Sentinel (`redis-server <conf>
# --sentinel`) and Cluster nodes; redis-cli creates a Cluster.
# Set BLINDGATE_E2E_REDIS_IMAGE (e.g. redis:7-alpine) to use a registry image
# instead where one can be pulled.
#
# The context is prepared on the host by deploy/images. Build with
# `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
# AOF files go here; only the runtime user may write them.
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# Listens on 6379. No EXPOSE on purpose: `docker run -P` and testcontainers
# publish every EXPOSEd port on the host, and Redis belongs in a private zone.
# Append-only persistence so a restart keeps replay-cache entries, sessions
# and tokens. Protected mode is off because clients connect over the
# container network, which must itself be private (no published port).
# No ENTRYPOINT: the same command line runs this image and the official one.
CMD ["redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "no"]
