# Processor stand-in (deploy/processor): an HTTPS card processor with its
# own CA, for the e2e suite and for trying forwarding with compose. Not part
# of Blindgate. The context is prepared on the host by deploy/images.
FROM scratch
COPY rootfs/ /
# It writes its CA certificate here, for the key service's destination.
COPY --chown=65532:65532 data/ /var/lib/processor/
USER 65532:65532
WORKDIR /var/lib/processor
ENV BLINDGATE_PROCESSOR_ADDR=0.0.0.0:8443 \
    BLINDGATE_PROCESSOR_CA_OUT=/var/lib/processor/processor-ca.pem
ENTRYPOINT ["/usr/local/bin/processor"]
