// Package e2e is Blindgate's end-to-end suite, for flows that cross
// processes. It builds the images once per run (package deploy/images; no
// registry is needed), starts them with testcontainers on Docker networks
// laid out like production (an internal key zone with Redis and the key
// service, a public zone, and the gateway alone in both with the only
// published port) and drives a real headless Chromium from the host.
//
//	go test ./e2e/...            # skips without Docker (fails under CI=true)
//	go test -short ./e2e/...     # skips the suite
//
// Prebuilt images: BLINDGATE_KEYSERVICE_IMAGE, BLINDGATE_GATEWAY_IMAGE,
// BLINDGATE_E2E_REDIS_IMAGE (e.g. redis:7-alpine where it can be pulled).
// On failure, container logs and screenshots go to $BLINDGATE_ARTIFACTS
// (default e2e/artifacts)/<test name>/.
package e2e
