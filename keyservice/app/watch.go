package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sigauth"
)

// watcher picks up changes the admin commands make to the keyring, the
// allow-list, the destinations and the passkey registry while the service
// runs (rotation, retirement, enrolment, revocation, approval), and records that it applied each one in the audit log (the
// command's own record of the change arrives through the admin spool, see
// audit.SpoolDir).
type watcher struct {
	hsm         *hsmUnsealer // nil without -hsm-module
	holder      *seal.Holder
	clients     *sigauth.AllowList
	clientsPath string
	dests       *destinations.List
	destsPath   string
	passkeys    *passkeys.Registry
	audit       *audit.Log
	log         *slog.Logger
}

func (w *watcher) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.once(ctx)
		}
	}
}

func (w *watcher) once(ctx context.Context) {
	changed, err := w.holder.ReloadIfChanged()
	switch {
	case errors.Is(err, seal.ErrMasterRotated) && w.hsm != nil:
		_ = w.hsm.unseal(ctx) // the new master key is wrapped by the HSM too
	case errors.Is(err, seal.ErrMasterRotated):
		w.log.Warn("the keyring file was re-sealed under a new master key (keys rotate-master): serving the loaded keyring until the new shares are submitted (keyservice unseal)")
	case err != nil:
		w.log.Error("keyring reload failed; keeping the loaded keyring", "err", err)
	case w.hsm != nil && w.hsm.due(time.Now()):
		_ = w.hsm.unseal(ctx)
	}
	if changed {
		w.record(ctx, audit.EventKeyringReload, "keyring")
	}
	changed, err = w.clients.ReloadIfChanged(w.clientsPath)
	if err != nil {
		w.log.Error("client allow-list reload failed; keeping the loaded list", "err", err)
	}
	if changed {
		w.record(ctx, audit.EventClientsReload, "clients")
	}
	changed, err = w.dests.ReloadIfChanged(w.destsPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No file yet (or removed): the list in force stays, as for a bad file.
	case err != nil:
		w.log.Error("destinations reload failed; keeping the loaded list", "err", err)
	}
	if changed {
		w.record(ctx, audit.EventDestinationsReload, "destinations")
	}
	// The service re-reads the registry on every reveal and challenge as
	// well; this picks up an approval or revocation when none comes.
	changed, err = w.passkeys.ReloadIfChanged()
	if err != nil {
		w.log.Error("passkey registry reload failed; keeping the loaded registry", "err", err)
	}
	if changed {
		w.record(ctx, audit.EventPasskeysReload, "passkeys")
	}
}

func (w *watcher) record(ctx context.Context, event, resource string) {
	w.log.Info("reloaded after an admin change", "what", resource)
	ev := audit.Event{Event: event, Actor: "admin-cli", Outcome: audit.OutcomeSuccess, Resource: resource}
	if _, err := w.audit.Append(ctx, ev); err != nil {
		w.log.Error("audit append of reload failed", "err", err)
	}
}
