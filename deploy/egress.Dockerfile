# Blindgate egress proxy: the key zone's only way out, an HTTP CONNECT proxy
# to the allow-listed forward destinations (cmd/egress). One static Go
# binary on an empty base image, running as uid 65532.
# The context is prepared on the host by deploy/images.
FROM scratch
COPY rootfs/ /
USER 65532:65532
# The binary defaults to 127.0.0.1, which the key service could not reach.
# No EXPOSE: nothing is published; only the key zone talks to it.
ENV BLINDGATE_EGRESS_ADDR=0.0.0.0:3128
ENTRYPOINT ["/usr/local/bin/egress"]
