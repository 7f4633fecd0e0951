# Blindgate admin tool: `blindgate` (merchants, operators, keygen, rewrap,
# totp) for one-shot containers beside the gateway, e.g.
#
#   docker compose run --rm gateway-admin merchants add -name Shop -origin https://shop.example
#
# It reaches the gateway's Redis with the gateway's store settings
# (BLINDGATE_GW_STORE, BLINDGATE_GW_REDIS, ...). Not the gateway image: this
# binary also links `blindgate demo`, i.e. the key service and its card-number
# code, which the gateway image must not carry. Static binary, empty base,
# uid 65532, no shell.
#
# The context is prepared on the host by deploy/images. Build with
# `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
# keygen writes key files here; mount the gateway's volume to hand them over.
COPY --chown=65532:65532 data/ /var/lib/blindgate/
USER 65532:65532
WORKDIR /var/lib/blindgate
ENTRYPOINT ["/usr/local/bin/blindgate"]
CMD ["help"]
