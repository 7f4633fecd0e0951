# Blindgate gateway: one static Go binary on an empty base image (no shell,
# no package manager), running as uid 65532. It holds no private key and no
# card-number code; see docs/contracts.md for its trust zone. The admin tool
# (`blindgate merchants|operators|keygen|rewrap`) is a separate image,
# deploy/admin.Dockerfile, because it links code this image must not carry.
#
# The context (rootfs/ with the binary, data/) is prepared on the host by
# deploy/images. Build with `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
# Writable state: the gateway's audit log, its request-signing keys
# (gateway.jwk, backoffice.jwk by default) and the bbolt store when Redis is
# not configured.
COPY --chown=65532:65532 data/ /var/lib/blindgate/
USER 65532:65532
WORKDIR /var/lib/blindgate
VOLUME ["/var/lib/blindgate"]
# The binary defaults to 127.0.0.1, which nothing outside the container could
# reach. It listens on 8080; no EXPOSE, so that `docker run -P` publishes
# nothing by surprise: publish it deliberately (compose: 127.0.0.1:8080).
ENV BLINDGATE_GW_ADDR=0.0.0.0:8080
ENTRYPOINT ["/usr/local/bin/gateway"]
