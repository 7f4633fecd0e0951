package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/hsm"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
)

// hsmRetry is how often a sealed service retries an HSM it could not use.
const hsmRetry = 30 * time.Second

// hsmUnsealer opens the keyring with the master key the HSM unwraps: at
// start, again while the service is sealed (the token was unreachable), and
// after `keys rotate-master` re-sealed the file under a new master key.
type hsmUnsealer struct {
	cfg    hsm.Config
	path   string
	holder *seal.Holder
	audit  *audit.Log
	log    *slog.Logger

	mu      sync.Mutex
	last    time.Time
	lastErr string
}

// due reports whether the watcher should try the HSM now.
func (u *hsmUnsealer) due(now time.Time) bool {
	if !u.holder.Sealed() && !u.holder.MasterRotated() {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return now.Sub(u.last) >= hsmRetry
}

// unseal asks the token for the master key and opens the keyring with it.
// Every outcome is audited once (a failure again only when it changes), and
// a failure leaves the service as it was: sealed, or serving the keyring it
// holds.
func (u *hsmUnsealer) unseal(ctx context.Context) error {
	u.mu.Lock()
	u.last = time.Now()
	u.mu.Unlock()
	err := u.open()
	ev := audit.Event{Event: audit.EventUnseal, Actor: "keyservice", Origin: "hsm", Outcome: audit.OutcomeSuccess,
		Reason: "master key unwrapped by the HSM (token " + u.cfg.TokenLabel + ")"}
	if err != nil {
		ev.Outcome, ev.Code, ev.Reason = audit.OutcomeFailure, "unseal_failed", "HSM: "+err.Error()
	}
	u.mu.Lock()
	repeat := err != nil && err.Error() == u.lastErr
	u.lastErr = ""
	if err != nil {
		u.lastErr = err.Error()
	}
	u.mu.Unlock()
	if repeat {
		return err
	}
	if err != nil {
		u.log.Error("HSM unseal failed; the key service stays sealed (or keeps the keyring it holds) and retries", "err", err, "retry", hsmRetry)
	} else {
		u.log.Info("key service unsealed by the HSM", "token", u.cfg.TokenLabel)
	}
	if _, aerr := u.audit.Append(ctx, ev); aerr != nil {
		u.log.Error("audit append of the HSM unseal failed", "err", aerr)
	}
	return err
}

func (u *hsmUnsealer) open() error {
	c, err := keyring.ReadCustody(u.path)
	if err != nil {
		return err
	}
	if c.HSM == nil {
		return errors.New("the keyring records no HSM-wrapped master key (make one with keys init or keys rotate-master and -hsm-module)")
	}
	dep, err := keyring.ReadDeployment(u.path)
	if err != nil {
		return err
	}
	tok, err := hsm.Open(u.cfg)
	if err != nil {
		return err
	}
	defer tok.Close()
	master, err := tok.Unwrap(c.HSM, hsm.AAD(dep))
	if err != nil {
		return err
	}
	defer clear(master)
	if err := u.holder.UnsealWithKey(master); err != nil {
		return fmt.Errorf("the HSM's master key does not open the keyring: %w", err)
	}
	return nil
}
