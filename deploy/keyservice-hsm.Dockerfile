# Blindgate key service with the HSM seal (PKCS#11): the key service built
# with cgo and -tags hsm, the shared libraries ldd lists for it (the dynamic
# loader and libc, each at its own path, as in the Redis image), and Debian's
# SoftHSM2 (its module at /usr/lib/softhsm/libsofthsm2.so, softhsm2-util,
# their libraries) on an empty base image: no shell, no package manager.
# Choose it only for the HSM seal; the default keyservice image is one static
# binary. With a real HSM, mount the vendor's PKCS#11 module and the
# libraries it needs, and point -hsm-module at it (docs/KEYS.md).
#
# The context is prepared on the host by deploy/images (needs gcc and
# softhsm2 there). Build with `make images-hsm` or
# `go run ./cmd/images -images keyservice-hsm`.
FROM scratch
COPY rootfs/ /
# The keyring, client allow-list, audit log and SoftHSM2's token files live
# here; only the runtime user may write them.
COPY --chown=65532:65532 data/ /var/lib/blindgate/
USER 65532:65532
WORKDIR /var/lib/blindgate
VOLUME ["/var/lib/blindgate"]
ENV BLINDGATE_KS_ADDR=0.0.0.0:8443
ENV SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf
ENTRYPOINT ["/usr/local/bin/keyservice"]
CMD ["serve"]
