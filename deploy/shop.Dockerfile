# Demo merchant for docker-compose.yml: a shop page on its own origin that
# embeds Blindgate's checkout, and the shop's server that holds the merchant's
# secret API key (deploy/shop). Not part of Blindgate; what an integration
# looks like. Static binary, empty base, uid 65532, no shell.
#
# The context is prepared on the host by deploy/images. Build with
# `make images` or `go run ./cmd/images`.
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENV BLINDGATE_SHOP_ADDR=0.0.0.0:8081
ENTRYPOINT ["/usr/local/bin/shop"]
