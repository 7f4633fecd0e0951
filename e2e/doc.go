// Package e2e is Blindgate's end-to-end suite, for flows that cross
// processes. It builds the images once per run (package deploy/images, built
// through testcontainers-go; no registry is needed), starts them with
// testcontainers on Docker networks laid out like production (an internal
// key zone with Redis and the key service, a public zone, and the gateway
// alone in both with the only published port) and drives a real headless
// Chromium from the host, which loads pages from http://127.0.0.1:<port>
// (the gateway) and http://localhost:<port> (the merchant's page, served by
// the test process): two sites, as in production.
//
// Tests (each one stack, subtests in order; at most two run at a time):
//
//	TestKeyZoneIsolation    nothing outside the key zone reaches the key service
//	TestKeyServiceAlone     its endpoints; unknown, forged and revoked client keys
//	                        refused; replayed request refused, also after a Redis restart
//	TestCheckoutEveryBrand  a test card per brand typed in the embedded checkout,
//	                        token by postMessage, masked card (first 6, last 4, fpm_
//	                        fingerprint) from the merchant API; key service stopped:
//	                        retry message, no token, recovery with the same
//	                        fingerprint; audit chain and signed checkpoints verify
//	TestBackOffice          login + TOTP enrolment, passkey enrolment (virtual
//	                        authenticator) approved by `docker exec` of `keyservice
//	                        passkeys approve`, search, reveals approved by the
//	                        passkey and decrypted in the page, reveal limit,
//	                        audit chain with every reveal and its passkey
//	TestKeyRotation         `keyservice keys rotate` under traffic, new kid, old
//	                        tokens reveal, `blindgate rewrap`, retire
//	TestRedisRestart        Redis (AOF) restarted under traffic: fail closed, recover,
//	                        nothing stored lost
//	TestCompose             docker-compose.yml matches this topology; its documented
//	                        first-run steps work and a shopper pays on the demo shop
//	TestReplicas            two gateways, two key services (one keyring volume) on a
//	                        Redis Cluster of three masters: checkouts through both in
//	                        Chromium and by API, limits not doubled, a replay refused
//	                        by the other key service, one rotation seen by both, a
//	                        login used on the other gateway; one key service and one
//	                        gateway SIGKILLed under load, nothing acknowledged lost
//	TestSentinelFailover    Redis Sentinel (primary, replica, three Sentinels): the
//	                        primary stopped under load, the window of 503s measured,
//	                        nothing acknowledged lost
//
//	go test ./e2e/...            # skips without Docker (fails when CI is set)
//	go test -short ./e2e/...     # skips the suite (fails when CI is set)
//
// Prebuilt images: BLINDGATE_KEYSERVICE_IMAGE, BLINDGATE_GATEWAY_IMAGE,
// BLINDGATE_ADMIN_IMAGE, BLINDGATE_SHOP_IMAGE, BLINDGATE_E2E_REDIS_IMAGE
// (Redis: redis:7-alpine when it is in the local image store, else an image
// of the host's redis-server). On failure, container logs and screenshots go
// to $BLINDGATE_ARTIFACTS (default e2e/artifacts)/<test name>/.
package e2e
