# Test-only image for the e2e suite: a static HTTP GET client (e2e/probe) run
# inside a container network to show what a container there can reach.
# The context is prepared on the host by deploy/images.
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/probe"]
