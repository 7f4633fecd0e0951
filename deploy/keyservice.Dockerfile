# Blindgate key service: one static Go binary on an empty base image (no
# shell, no package manager), running as uid 65532.
#
# Not buildable from the repository root on its own: no golang image can be
# pulled, so the context (rootfs/ with the binary, data/) is prepared on the
# host by deploy/images. Build with `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
# The keyring, client allow-list and audit log live here (relative paths in
# the key service's defaults); only the runtime user may write them.
COPY --chown=65532:65532 data/ /var/lib/blindgate/
USER 65532:65532
WORKDIR /var/lib/blindgate
VOLUME ["/var/lib/blindgate"]
# The binary defaults to 127.0.0.1, which no other container could reach.
# No EXPOSE on purpose: `docker run -P` and testcontainers publish every
# EXPOSEd port on the host, and the key service must publish none.
ENV BLINDGATE_KS_ADDR=0.0.0.0:8443
ENTRYPOINT ["/usr/local/bin/keyservice"]
CMD ["serve"]
