// Blindgate back office: the pages' controllers, over window.BlindgateBO
// (bocrypto.js, loaded first).
//
//   - token page: the end-to-end encrypted reveal. A fresh browser key pair,
//     a reveal challenge from the gateway (which asks the key service), the
//     operator's passkey over that reveal, then only ciphertext back, which
//     this page decrypts and shows with a countdown. The number and the key
//     are dropped after the countdown, on pagehide and on navigation.
//   - passkeys page: enrol a passkey (navigator.credentials.create).
//   - login page: log in with password and a passkey instead of a code.
//   - TOTP enrolment page: a button that copies the secret as apps take it.
//
// It never logs, stores or sends the number, and writes the page only
// through textContent (the CSP requires Trusted Types for any HTML sink,
// and allows none).
(function () {
  'use strict';

  var BO = window.BlindgateBO;

  function byId(id) { return document.getElementById(id); }

  function setText(el, s) {
    if (el) {
      el.textContent = s;
    }
  }

  function show(el, on) {
    if (el) {
      el.hidden = !on;
    }
  }

  // ApiError is a refusal of the gateway's JSON routes: {"error":{"code","message"}}.
  function ApiError(status, code, message) {
    var e = new Error(message || code);
    e.name = 'ApiError';
    e.status = status;
    e.code = code;
    return e;
  }

  // postJSON posts body to path with the session's CSRF token in the header
  // (never in the URL) and returns the decoded answer or throws an ApiError.
  function postJSON(path, csrf, body) {
    return fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, 'Accept': 'application/json' },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : {};
        } catch (e) {
          data = null;
        }
        if (!resp.ok) {
          var err = data && data.error ? data.error : {};
          throw ApiError(resp.status, err.code || 'unavailable', err.message || 'The request failed (HTTP ' + resp.status + ').');
        }
        if (data === null) {
          throw ApiError(resp.status, 'bad_answer', 'The gateway answered something unreadable.');
        }
        return data;
      });
    });
  }

  // passkeyMessage turns a WebAuthn exception into a sentence.
  function passkeyMessage(e) {
    if (e && e.name === 'NotAllowedError') {
      return 'The passkey request was cancelled or timed out. Nothing was revealed or changed.';
    }
    if (e && e.name === 'InvalidStateError') {
      return 'This authenticator already holds a passkey for your account.';
    }
    if (e && e.name === 'ApiError') {
      return e.message;
    }
    if (e && e.name === 'BOError') {
      return 'The answer could not be decrypted or checked in this browser (' + e.code + '). Nothing is shown.';
    }
    return 'Something went wrong (' + (e && e.name ? e.name : 'error') + '). Nothing was revealed or changed.';
  }

  // ---- the token page: end-to-end encrypted reveal ----

  function revealPage() {
    var form = byId('bo-reveal-form');
    var box = byId('bo-reveal');
    if (!form || !box) {
      return;
    }
    var token = form.getAttribute('data-token');
    var base = form.getAttribute('action'); // .../tokens/<id>/reveal
    var csrf = form.elements.csrf.value;
    var reasonInput = byId('bo-reason');
    var btn = byId('bo-reveal-btn');
    var errEl = byId('bo-reveal-error');
    var statusEl = byId('bo-reveal-status');
    var reauth = byId('bo-reauth');
    var panEl = byId('bo-pan');
    var expEl = byId('bo-exp');
    var nameEl = byId('bo-name');
    var copyBtn = byId('bo-copy');
    var hideBtn = byId('bo-hide');
    var countdown = byId('bo-countdown');

    var secs = parseInt(box.getAttribute('data-hide-after'), 10);
    if (!(secs > 0) || secs > 60) {
      secs = 60; // never longer than the policy, whatever the page says
    }

    // The reveal's secrets live only in these variables until drop().
    var keys = null;   // the browser key pair (private half not extractable)
    var pan = '';      // the number, for the one guarded copy
    var copied = false;
    var timer = null, deadline = null, left = 0;
    var busy = false;

    if (!BO || !BO.available() || !BO.passkeysAvailable()) {
      btn.disabled = true;
      setText(errEl, 'This browser cannot decrypt a reveal here (it needs WebCrypto and passkeys over HTTPS). Nothing can be shown.');
      show(errEl, true);
      return;
    }
    // The page ships the button disabled: the form is this script's, and a
    // native post would only leave a resubmittable entry in the history.
    btn.disabled = false;

    function fail(msg) {
      setText(statusEl, '');
      setText(errEl, msg);
      show(errEl, true);
    }

    function clearClipboard() {
      // Best effort: browsers may refuse a write without a user gesture.
      if (copied && navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText('').catch(function () {});
      }
    }

    // drop forgets the key pair and the number: after the countdown, on
    // "Hide now", on pagehide and on navigation.
    function drop() {
      keys = null;
      if (timer) {
        clearInterval(timer);
        timer = null;
      }
      if (deadline) {
        clearTimeout(deadline);
        deadline = null;
      }
      if (box.getAttribute('data-state') !== 'shown') {
        return;
      }
      pan = '';
      setText(panEl, ''); // gone from the DOM, not just from view
      setText(expEl, '••/••••');
      setText(nameEl, '••••');
      box.setAttribute('data-state', 'hidden');
      copyBtn.disabled = true;
      hideBtn.disabled = true;
      setText(countdown, 'Hidden. Reveal again if you still need it.');
      clearClipboard();
    }

    function tick() {
      left -= 1;
      if (left <= 0) {
        drop();
        return;
      }
      setText(countdown, 'Hides in ' + left + ' s');
    }

    function display(card, credential, reason) {
      pan = card.pan;
      copied = false;
      var groups = box.getAttribute('data-pan-groups');
      setText(panEl, BO.groupPAN(card.pan, groups));
      setText(byId('bo-pan-hidden'), BO.maskPAN(card.pan, groups) + ' (hidden)');
      setText(expEl, (card.exp_month < 10 ? '0' : '') + card.exp_month + '/' + card.exp_year);
      setText(nameEl, card.name || '—');
      setText(byId('bo-reveal-reason'), reason);
      setText(byId('bo-reveal-cred'), credential || 'none (approval off)');
      box.hidden = false;
      box.setAttribute('data-state', 'shown');
      copyBtn.disabled = !(navigator.clipboard && navigator.clipboard.writeText);
      copyBtn.textContent = 'Copy number once';
      hideBtn.disabled = false;
      left = secs;
      setText(countdown, 'Hides in ' + left + ' s');
      timer = setInterval(tick, 1000);
      deadline = setTimeout(drop, secs * 1000); // the interval may be throttled in a background tab
    }

    async function reveal() {
      drop();
      show(errEl, false);
      var reason = BO.normReason(reasonInput.value);
      var extra = {};
      if (!reauth.hidden) {
        extra.password = byId('bo-password').value;
        extra.code = byId('bo-code') ? byId('bo-code').value : '';
      }
      setText(statusEl, 'Preparing a key for this reveal…');
      keys = await BO.newKeyPair();
      var jwk = await BO.publicJWK(keys.publicKey);
      var jkt = await BO.thumbprint(jwk);
      var ch = await postJSON(base + '/challenge', csrf, { reason: reason, browser_key: jwk });
      if (ch.reauth_required && reauth.hidden) {
        show(reauth, true);
        byId('bo-password').required = true;
        byId('bo-password').focus();
        keys = null;
        fail('Revealing needs a login within the last 5 minutes: enter your password' +
          (byId('bo-code') ? ' and a fresh authenticator code' : '') + ', then press Reveal again.');
        return;
      }
      var body = { reason: reason, browser_key: jwk, nonce: ch.nonce };
      if (extra.password) {
        body.password = extra.password;
        body.code = extra.code;
      }
      if (ch.passkey_required || (ch.credentials && ch.credentials.length)) {
        if (!ch.credentials || !ch.credentials.length) {
          keys = null;
          fail('You have no approved passkey yet. Add one under “Passkeys” and ask a key-service administrator to approve it.');
          return;
        }
        setText(statusEl, 'Approve this reveal with your passkey…');
        var challenge = await BO.revealChallenge(ch.nonce, token, reason, jkt);
        body.assertion = await BO.getAssertion(challenge, ch.rp_id, ch.credentials);
      }
      setText(statusEl, 'Asking the key service…');
      var res = await postJSON(base, csrf, body);
      setText(statusEl, 'Decrypting in this browser…');
      var card = await BO.decryptCard(res.jwe, keys.privateKey, { token: token, nonce: ch.nonce });
      keys = null; // one answer per key: the private key is of no further use
      if (!reauth.hidden) {
        byId('bo-password').value = '';
        if (byId('bo-code')) {
          byId('bo-code').value = '';
        }
        byId('bo-password').required = false;
        show(reauth, false);
      }
      setText(statusEl, '');
      display(card, res.credential, reason);
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (busy) {
        return;
      }
      busy = true;
      btn.disabled = true;
      reveal().catch(function (e) {
        keys = null;
        if (e && e.code === 'reauth_required' && reauth.hidden) {
          show(reauth, true);
          byId('bo-password').required = true;
        }
        if (e && e.code === 'login_required') {
          fail('Your session ended. Log in again; nothing was revealed.');
          return;
        }
        fail(passkeyMessage(e));
      }).then(function () {
        busy = false;
        btn.disabled = false;
      });
    });

    // No copying by selection: only the button below copies, once.
    document.addEventListener('copy', function (ev) {
      var sel = window.getSelection();
      if (sel && sel.rangeCount && sel.containsNode(panEl, true)) {
        ev.preventDefault();
      }
    });
    panEl.addEventListener('selectstart', function (ev) { ev.preventDefault(); });
    panEl.addEventListener('contextmenu', function (ev) { ev.preventDefault(); });

    copyBtn.addEventListener('click', function () {
      if (copied || !pan || !navigator.clipboard || !navigator.clipboard.writeText) {
        return;
      }
      copied = true;
      copyBtn.disabled = true;
      navigator.clipboard.writeText(pan).then(function () {
        copyBtn.textContent = 'Copied (clipboard clears when hidden)';
      }, function () {
        copyBtn.textContent = 'Copy failed';
      });
    });
    hideBtn.addEventListener('click', drop);

    // Leaving the page drops everything, so back/forward cannot bring it
    // back; a navigation that starts (a link, a form) drops it at once.
    window.addEventListener('pagehide', drop);
    window.addEventListener('beforeunload', drop);
    if (window.navigation && window.navigation.addEventListener) {
      window.navigation.addEventListener('navigate', drop);
    }
  }

  // ---- the passkeys page: enrolment ----

  function passkeyPage() {
    var form = byId('bo-passkey-form');
    if (!form) {
      return;
    }
    var csrf = form.elements.csrf.value;
    var btn = byId('bo-passkey-btn');
    var errEl = byId('bo-passkey-error');
    var statusEl = byId('bo-passkey-status');
    var result = byId('bo-passkey-result');
    var busy = false;

    if (!BO || !BO.passkeysAvailable()) {
      btn.disabled = true;
      setText(errEl, 'This browser cannot create passkeys here (it needs WebAuthn over HTTPS).');
      show(errEl, true);
      return;
    }

    async function enrol() {
      show(errEl, false);
      show(result, false);
      setText(statusEl, 'Asking for a registration challenge…');
      var ch = await postJSON(form.getAttribute('data-challenge'), csrf, {});
      var body = { nonce: ch.nonce, password: byId('bo-pk-password').value };
      if (byId('bo-pk-code')) {
        body.code = byId('bo-pk-code').value;
      }
      if (ch.factor === 'passkey' && ch.assert) {
        setText(statusEl, 'Confirm it is you with one of your passkeys…');
        body.assertion = await BO.getAssertion(BO.b64uDecode(ch.assert.challenge), ch.assert.rp_id, ch.assert.credentials);
      }
      setText(statusEl, 'Create the passkey on your authenticator…');
      body.attestation = await BO.createPasskey(ch);
      setText(statusEl, 'Registering…');
      var res = await postJSON(form.getAttribute('action'), csrf, body);
      setText(statusEl, '');
      byId('bo-pk-password').value = '';
      if (byId('bo-pk-code')) {
        byId('bo-pk-code').value = '';
      }
      setText(byId('bo-pk-fingerprint'), res.fingerprint);
      setText(byId('bo-pk-command'), res.approve_command);
      setText(byId('bo-pk-status'), res.status);
      setText(byId('bo-pk-empty'), 'One passkey, ' + res.status + ' at the key service: ' + res.fingerprint + '.');
      show(result, true);
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (busy) {
        return;
      }
      busy = true;
      btn.disabled = true;
      enrol().catch(function (e) {
        setText(statusEl, '');
        setText(errEl, passkeyMessage(e));
        show(errEl, true);
      }).then(function () {
        busy = false;
        btn.disabled = false;
      });
    });
  }

  // ---- the login page: password + passkey ----

  function loginPage() {
    var btn = byId('bo-passkey-login');
    var form = byId('bo-login-form');
    if (!btn || !form) {
      return;
    }
    if (!BO || !BO.passkeysAvailable()) {
      btn.hidden = true;
      return;
    }
    btn.hidden = false;
    var errEl = byId('bo-login-error');
    btn.addEventListener('click', function () {
      var user = byId('bo-username'), pass = byId('bo-password');
      if (!user.reportValidity() || !pass.reportValidity()) {
        return;
      }
      btn.disabled = true;
      postJSON(btn.getAttribute('data-challenge'), form.elements.csrf.value, {}).then(function (ch) {
        return BO.getAssertion(BO.b64uDecode(ch.challenge), ch.rp_id, []);
      }).then(function (assertion) {
        form.elements.assertion.value = JSON.stringify(assertion);
        if (byId('bo-code')) {
          byId('bo-code').value = ''; // one factor: the passkey
        }
        form.submit();
      }).catch(function (e) {
        btn.disabled = false;
        setText(errEl, passkeyMessage(e));
        show(errEl, true);
      });
    });
  }

  // ---- the TOTP enrolment page: copy the secret ----

  // The secret is shown in groups set apart by CSS; its text, and so what
  // this button copies, has no spaces.
  function enrollPage() {
    var el = byId('bo-totp-secret');
    var btn = byId('bo-totp-copy');
    if (!el || !btn || !navigator.clipboard || !navigator.clipboard.writeText) {
      return;
    }
    btn.hidden = false;
    btn.addEventListener('click', function () {
      navigator.clipboard.writeText(el.getAttribute('data-secret') || el.textContent).then(function () {
        setText(byId('bo-totp-copied'), 'Copied.');
      }, function () {
        setText(byId('bo-totp-copied'), 'Copy failed: select the secret and copy it.');
      });
    });
  }

  revealPage();
  passkeyPage();
  loginPage();
  enrollPage();
})();
