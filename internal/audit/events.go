package audit

// Event names. This file is the one place they are defined; every name is a
// constant listed in All, and TestEventNamesUnique proves that no two
// constants share a value (a copy-paste duplicate would merge two kinds of
// event in every report built on the log).
//
// Names are stable: reports, alarms and retained logs match on them, so a
// name is never renamed or reused; add a new one instead.
//
// Fields common to every event: seq, time, event, outcome, prev, hash (set by
// the log), and origin (the caller's IP address) whenever a request caused the
// event. Outcome is "success", "failure" or "denied". The fields listed under
// each name are the ones it fills besides those. No field ever holds a card
// number, CVC, JWE, signature, token secret, password or cookie: resources
// are named by ids (token id, session id, key id, fingerprint prefix).
const (
	// --- key service: card operations ---

	// EventInspect: a client asked for the masked data of a card ciphertext.
	// Fields: client, resource (checkout session id), kid (KEK version),
	// code (error code on failure).
	EventInspect = "inspect"

	// EventReveal: a client asked for a card on behalf of an operator, to be
	// encrypted to the operator's browser key. Written BEFORE the key service
	// decrypts (no audit, no reveal); outcome "success" means the reveal was
	// authorised (the operator's passkey verified) and went ahead. Fields:
	// client, actor (operator id), reason (operator's stated reason),
	// resource (token id), kid, credential (the approving passkey), code (on
	// failure).
	// The gateway's back office writes one to its own log too, before it
	// asks the key service (no client field; never the card number).
	EventReveal = "reveal"

	// EventRevealDenied: a reveal was refused before decryption (operation
	// not allowed for the client, nonce, passkey, rate limit, ciphertext).
	// Outcome "denied". Fields: client, actor, reason, resource, code,
	// credential (when the assertion named one).
	EventRevealDenied = "reveal.denied"

	// EventRewrap: a ciphertext was re-encrypted under the newest KEK.
	// Fields: client, kid (the new KEK version), resource (the old kid),
	// code (on failure).
	EventRewrap = "rewrap"

	// EventDenied: a request to the key service failed authentication or
	// hit a rate limit before reaching an operation. Outcome "denied".
	// Fields: client (when the signature named a known one), resource (the
	// operation, e.g. "inspect"), code (the error code returned).
	EventDenied = "denied"

	// EventAlarm: unusual volume crossed an alarm threshold. Outcome
	// "failure". Fields: client, actor (when per-actor), reason (which
	// threshold and window), code.
	EventAlarm = "alarm"

	// --- key service: key management ---

	// EventUnseal: an unseal attempt (a share or a reset). Outcome "success"
	// only for a share that counted (reason says "share i of n accepted") or a
	// reset, "failure" for a wrong or malformed share, "denied" for one refused
	// without effect (rate limit, wrong round nonce, already unsealed).
	// Fields: origin, reason, code (unless success).
	EventUnseal = "unseal"

	// EventSeal: the keyring was sealed (shutdown or operator request).
	// Fields: actor, reason.
	EventSeal = "seal"

	// EventKeyInit: a new keyring was created. Fields: actor, kid (first KEK
	// version), reason (algorithm).
	EventKeyInit = "key.init"

	// EventKeyRotate: a new KEK version became active. Fields: actor, kid
	// (new version), resource (previous active version), reason (algorithm).
	// A scheduled rotation (the key service's -kek-max-age) has actor
	// "keyservice" and a reason that goes on with the cryptoperiod; if its
	// write then fails, a "failure" record with code "rotation_failed"
	// follows.
	EventKeyRotate = "key.rotate"

	// EventKeyRetire: a KEK version was retired (can no longer decrypt).
	// Fields: actor, kid, reason (the gateway's token count it relied on,
	// or "forced" with the operator's reason).
	EventKeyRetire = "key.retire"

	// EventClientAdd: a client key was added to the signed-request
	// allow-list. Fields: actor, client, kid (client key id), reason (the
	// operations granted, comma-separated).
	EventClientAdd = "client.add"

	// EventClientRevoke: a client key was revoked. Fields: actor, client,
	// kid.
	EventClientRevoke = "client.revoke"

	// EventAuditOpen: an audit log was opened (started or continued) by a
	// process (PCI DSS 10.2.1.6). Fields: resource (log file path), reason
	// (process name/version).
	EventAuditOpen = "audit.open"

	// --- gateway: back office and merchant API ---

	// EventLogin: an operator login attempt (password and MFA). Fields:
	// actor (operator id or the submitted login name on failure), code.
	EventLogin = "login"

	// EventLogout: an operator session ended. Fields: actor.
	EventLogout = "logout"

	// EventMFAEnroll: an operator enrolled or reset an MFA factor. Fields:
	// actor, resource (the operator whose factor changed).
	EventMFAEnroll = "mfa.enroll"

	// EventOperatorChange: an operator account was created, disabled or had
	// its role changed. Fields: actor, resource (operator id; the login name
	// when created from the CLI, recorded before the id exists), reason (the
	// change), code ("admin_failed" when a CLI change then failed).
	EventOperatorChange = "operator.change"

	// EventTokenCreate: a card token is stored after a checkout, recorded
	// before the write (gateway/ingest). Fields: client (merchant id),
	// resource (token id), kid, origin (shopper IP); outcome failure with
	// code store_failed or session_has_token when that id was then not
	// stored.
	EventTokenCreate = "token.create"

	// EventTokenDelete: a card token was deleted. Fields: client (merchant
	// id) or actor (operator id), resource (token id).
	EventTokenDelete = "token.delete"

	// EventTokenSearch: an operator searched tokens (masked data only).
	// Fields: actor, reason (the query, without card data).
	EventTokenSearch = "token.search"

	// EventAuditView: an operator read the audit trail (PCI DSS 10.2.1.3).
	// Fields: actor, reason (the filter used).
	EventAuditView = "audit.view"

	// --- key service: changes picked up while running ---

	// EventKeyringReload: the running key service loaded a keyring file that
	// an admin command changed (rotation or retirement). Fields: actor
	// ("admin-cli"), resource ("keyring"), kid (the newest active version).
	EventKeyringReload = "keyring.reload"

	// EventClientsReload: the running key service loaded a changed client
	// allow-list (enrolment or revocation). Fields: actor ("admin-cli"),
	// resource ("clients").
	EventClientsReload = "clients.reload"

	// --- both services: the audit trail itself ---

	// EventSpoolRejected: a file in the admin spool was not a valid event; it
	// was renamed *.rejected and left for an operator. Outcome "failure".
	// Fields: resource (the renamed file), reason.
	EventSpoolRejected = "audit.spool.rejected"

	// EventAuditRecovered: the log came back from a fault without a person.
	// Either the writer recovered after a write or fsync error (the file
	// reopened, its synced prefix verified against the head held in memory,
	// unsynced bytes set aside) or a start found a torn last line (cut by a
	// crash mid-write) after a prefix that verifies, and set it aside.
	// Always followed by an alarm. Outcome "success". Fields: code (the
	// fault's class: "no_space", "quota", "io_error", "read_only",
	// "write_error", "sync_error", "rotate_error" or "torn_tail"), resource
	// (the quarantine file the set-aside bytes went to, if any), reason
	// ("outage_start=<RFC 3339> outage_end=<RFC 3339> discarded_bytes=<n>"
	// or "torn_line=<n> discarded_bytes=<n>"). Never an error's text: that
	// could carry anything the failing system call saw.
	EventAuditRecovered = "audit.recovered"

	// EventAuditSegment: the last record of a closed segment (see Segments):
	// the log's open file reached its size or a new day began, and the next
	// record starts a new file. Fields: resource (the closed segment's file
	// name), reason ("first_seq=<n> lines=<n> bytes=<n> rotate=size|day").
	EventAuditSegment = "audit.segment"

	// EventMerchantChange: a merchant was created or changed from the command
	// line. Fields: actor, resource (merchant name), reason (the change),
	// code ("admin_failed" when the change then failed).
	EventMerchantChange = "merchant.change"

	// EventAuditCheckpoint: the key service signed the chain's head with the
	// keyring's audit key (see Checkpoint). Fields: resource ("<seq>:<hash>"
	// of the signed head, which precedes this event), kid (audit key id),
	// reason (the Ed25519 signature, base64url), time (the signed time).
	EventAuditCheckpoint = "audit.checkpoint"

	// EventKeyUpgrade: `keyservice keys upgrade` gave an older keyring the
	// keys it lacked (the audit signing key). Fields: actor, kid (the audit
	// key id), reason.
	EventKeyUpgrade = "key.upgrade"

	// EventKeyRekey: `keyservice keys rekey` split the same master key into
	// a new share set (new custodians, count or threshold); stored cards and
	// the keyring's keys are untouched. Fields: actor, resource ("shares "
	// and the ids of the shares given, "<set>-<x>", never a share), reason
	// (old and new sets: "2-of-3 (set a1b2c3d4) -> 3-of-5 (set ...)").
	EventKeyRekey = "key.rekey"

	// EventKeyRotateMaster: `keyservice keys rotate-master` re-sealed the
	// keyring under a new master key with a new share set (or HSM
	// wrapping). Fields as EventKeyRekey.
	EventKeyRotateMaster = "key.rotate_master"

	// --- key service: forwarding a card to a processor ---

	// EventForward: a forward was authorised and the card is about to be
	// decrypted. Written and synced BEFORE the decrypt (no audit, no
	// forward). Fields: client (signing client), actor (merchant id),
	// resource (token id), kid, reason ("destination=<id>
	// idempotency_key=<key>"). Never the card, the template or a body.
	EventForward = "forward"

	// EventForwardResult: what became of an authorised forward. Outcome
	// "success" when the destination answered (any HTTP status) or the card
	// was re-encrypted, "failure" otherwise. Fields: client, actor
	// (merchant), resource (token id), reason ("destination=<id>
	// idempotency_key=<key> status=<HTTP status> latency_ms=<n>"), code (on
	// failure).
	EventForwardResult = "forward.result"

	// EventForwardDenied: a forward refused before any decryption (invalid
	// template, destination not allowed for the merchant, a card not bound
	// to the merchant (code card_not_bound), rate limit,
	// idempotency key reused for another request). Outcome "denied".
	// Fields: client, actor (merchant), resource (token id), reason
	// (destination and idempotency key when valid), code.
	EventForwardDenied = "forward.denied"

	// EventDestinationChange: `keyservice destinations add|remove` changed
	// the forward destinations. Fields: actor, resource (destination id),
	// reason ("add <url or processor key kid> for <merchants>" or
	// "remove"), code ("admin_failed" when the change then failed).
	EventDestinationChange = "destination.change"

	// EventDestinationsReload: the running key service loaded a changed
	// destinations file. Fields: actor ("admin-cli"), resource
	// ("destinations").
	EventDestinationsReload = "destinations.reload"

	// --- operators' passkeys (reveal approval) ---

	// EventPasskeyRegister: the key service was asked to register an
	// operator's passkey. Outcome "success" when it was recorded as pending
	// (it approves nothing until an admin approves it), "denied" when
	// refused. Fields: client, actor (operator id), credential, reason
	// ("fingerprint=<fp> aaguid=<hex> username=<name>"), code (on refusal).
	EventPasskeyRegister = "passkey.register"

	// EventPasskeyApprove: `keyservice passkeys approve` made a pending
	// passkey approve reveals. Fields: actor (who ran it), resource
	// (operator id), credential, reason ("fingerprint=<fp>"), code
	// ("admin_failed" when the change then failed).
	EventPasskeyApprove = "passkey.approve"

	// EventPasskeyRevoke: `keyservice passkeys revoke` revoked a passkey.
	// Fields as EventPasskeyApprove.
	EventPasskeyRevoke = "passkey.revoke"

	// EventPasskeysReload: the running key service loaded a passkey
	// registry an admin command changed. Fields: actor ("admin-cli"),
	// resource ("passkeys").
	EventPasskeysReload = "passkeys.reload"

	// EventPasskeyEnrolled: the gateway's back office enrolled a passkey for
	// an operator (its login copy) and forwarded it to the key service.
	// Fields: actor (operator id), resource (operator whose factor
	// changed), credential, reason (fingerprint), code (on failure).
	EventPasskeyEnrolled = "passkey.enrolled"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// All returns every event name defined above, in definition order.
func All() []string {
	return []string{
		EventInspect,
		EventReveal,
		EventRevealDenied,
		EventRewrap,
		EventDenied,
		EventAlarm,
		EventUnseal,
		EventSeal,
		EventKeyInit,
		EventKeyRotate,
		EventKeyRetire,
		EventClientAdd,
		EventClientRevoke,
		EventAuditOpen,
		EventLogin,
		EventLogout,
		EventMFAEnroll,
		EventOperatorChange,
		EventTokenCreate,
		EventTokenDelete,
		EventTokenSearch,
		EventAuditView,
		EventKeyringReload,
		EventClientsReload,
		EventSpoolRejected,
		EventAuditRecovered,
		EventAuditSegment,
		EventMerchantChange,
		EventAuditCheckpoint,
		EventKeyUpgrade,
		EventKeyRekey,
		EventKeyRotateMaster,
		EventForward,
		EventForwardResult,
		EventForwardDenied,
		EventDestinationChange,
		EventDestinationsReload,
		EventPasskeyRegister,
		EventPasskeyApprove,
		EventPasskeyRevoke,
		EventPasskeysReload,
		EventPasskeyEnrolled,
	}
}
