package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/blindgate/blindgate/deploy/images"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// hsmBuildable reports whether this host can build the keyservice-hsm image
// (cgo and Debian's SoftHSM2); without them the suite leaves it out and the
// HSM scenario skips (fails under CI=true, which installs both).
func hsmBuildable() bool {
	for _, tool := range []string{"gcc", "softhsm2-util"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

const hsmPINEnv = "BLINDGATE_E2E_HSM_PIN"

// TestHSMSealImage runs the keyservice-hsm image on its SoftHSM2 token: the
// key service starts sealed and unseals by asking the token, a KEK rotation
// made with the token reaches it, a restart unseals again with the rotation
// kept, and with the token unavailable (a wrong PIN) it says why and stays
// sealed.
func TestHSMSealImage(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	if !hsmBuildable() {
		testenv.Missing(t, "the keyservice-hsm image needs gcc and softhsm2 on the host")
	}
	ref := needImages(t, images.KeyServiceHSM)[images.KeyServiceHSM]
	hsmArgs := []string{"-hsm-module", images.SoftHSMModule, "-hsm-token-label", "blindgate", "-hsm-pin", "env:" + hsmPINEnv}
	serve := func(pin string) testcontainers.ContainerRequest {
		req := testcontainers.ContainerRequest{
			Image: ref,
			Cmd: append([]string{"serve", "-dev-insecure-http", "-redis", "memory", "-addr", "0.0.0.0:8443",
				"-public-url", "http://keyservice:8443", "-webauthn-origins", "http://localhost"}, hsmArgs...),
			Env:        map[string]string{hsmPINEnv: pin},
			WaitingFor: wait.ForLog("key service listening").WithStartupTimeout(60 * time.Second),
		}
		publishLoopback(&req, ksPort)
		return req
	}
	// Created, not started: the token and the keyring go in its volume first.
	ks := startContainer(t, "keyservice-hsm", serve("1234"), false)
	admin := func(entrypoint []string, args ...string) string {
		t.Helper()
		req := testcontainers.ContainerRequest{
			Image: ref, Entrypoint: entrypoint, Cmd: args, Env: map[string]string{hsmPINEnv: "1234"},
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.VolumesFrom = []string{ks.GetContainerID()}
				hc.NetworkMode = "none"
			},
		}
		code, out := runOnce(t, "keyservice-hsm-admin", req)
		if code != 0 {
			t.Fatalf("%v %s: exit %d\n%s", entrypoint, strings.Join(args, " "), code, tail([]byte(out), 4000))
		}
		return out
	}
	admin([]string{"/usr/bin/softhsm2-util"}, "--init-token", "--free", "--label", "blindgate", "--pin", "1234", "--so-pin", "5678")
	admin(nil, append([]string{"keys", "init", "-hsm-create-key", "-shares", "3", "-threshold", "2"}, hsmArgs...)...)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ks.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, tail(containerLogs(ks), 4000))
	}
	// status is the seal status; a scheme of "" means no answer.
	status := func(base string) (wire.SealStatus, string) {
		st, b := get(t, base+"/v1/sys/seal-status")
		var s wire.SealStatus
		if st != http.StatusOK || json.Unmarshal(b, &s) != nil {
			return wire.SealStatus{}, string(b)
		}
		return s, string(b)
	}
	activeKid := func(base string) string {
		_, b := get(t, base+wire.PathJWKS)
		kids := checkJWKS(t, b)
		return kids[0]
	}
	base := loopbackURL(t, ks, ksPort)
	if s, raw := status(base); s.Sealed || s.Scheme == "" {
		t.Fatalf("not unsealed by the HSM at start: %s\n%s", raw, tail(containerLogs(ks), 2000))
	}
	kid1 := activeKid(base)

	admin(nil, append([]string{"keys", "rotate"}, hsmArgs...)...)
	var kid2 string
	eventually(t, 30*time.Second, "the rotated KEK in the JWKS", func() (bool, string) {
		kid2 = activeKid(base)
		return kid2 != kid1, kid2
	})

	stop := 10 * time.Second
	if err := ks.Stop(ctx, &stop); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := ks.Start(ctx); err != nil {
		t.Fatalf("restart: %v\n%s", err, tail(containerLogs(ks), 4000))
	}
	base = loopbackURL(t, ks, ksPort)
	eventually(t, 30*time.Second, "unsealed by the HSM after a restart", func() (bool, string) {
		s, raw := status(base)
		return !s.Sealed && s.Threshold == 2, raw
	})
	if kid := activeKid(base); kid != kid2 {
		t.Fatalf("after the restart the active KEK is %s, want %s", kid, kid2)
	}
	if err := ks.Stop(ctx, &stop); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// The token unavailable: the same volume, a wrong PIN.
	bad := serve("0000")
	bad.HostConfigModifier = func(prev func(*container.HostConfig)) func(*container.HostConfig) {
		return func(hc *container.HostConfig) {
			prev(hc)
			hc.VolumesFrom = []string{ks.GetContainerID()}
		}
	}(bad.HostConfigModifier)
	ks2 := startContainer(t, "keyservice-hsm-no-token", bad, true)
	base = loopbackURL(t, ks2, ksPort)
	if s, raw := status(base); !s.Sealed || s.Scheme == "" {
		t.Fatalf("with the token unavailable: %s", raw)
	}
	if st, _ := get(t, base+"/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("readyz with the token unavailable: %d, want 503", st)
	}
	if logs := string(containerLogs(ks2)); !strings.Contains(logs, "HSM unseal failed") || !strings.Contains(logs, "token unavailable") {
		t.Errorf("no clear error with the token unavailable:\n%s", tail([]byte(logs), 2000))
	}
}
