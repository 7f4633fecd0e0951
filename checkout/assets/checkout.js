/*
 * Blindgate checkout page controller.
 *
 * Config comes from data-* attributes on #bg-form (rendered by the server):
 *   data-session        checkout session id (also the JWE header bg_sid)
 *   data-locale         session locale, e.g. "fr-FR"; data-lang is the server's pick
 *   data-parent-origin  origin(s) allowed to embed the page, space separated
 *   data-return-url     where to go after success when not embedded (optional)
 *   data-submit-url     POST target for {card_jwe, cvc_jwe}
 *   data-keys-url       JWKS of the public KEKs (/v1/keys)
 *   data-amount         the amount in major units, exact ("25.00"); "" = none
 *   data-currency       its ISO 4217 code ("EUR")
 *   data-submit-key     i18n key of the button's text ("submit_pay_amount")
 *
 * Invariants: a plaintext card value never goes into a request, a URL, the
 * console, Web Storage or a cookie; only the two JWEs leave the page. Messages to
 * the embedding parent go to one exact origin from data-parent-origin, never "*".
 */
(function (root, doc) {
  "use strict";

  var JWE = root.BlindgateJWE, Card = root.BlindgateCard, I18n = root.BlindgateI18n;
  var form = doc.getElementById("bg-form");
  if (!form || !JWE || !Card || !I18n) return;

  var MSG_TOKEN = "blindgate:token", MSG_RESIZE = "blindgate:resize", MSG_READY = "blindgate:ready",
    MSG_ERROR = "blindgate:error", MSG_HELLO = "blindgate:hello", MSG_FOCUS = "blindgate:focus";

  // The brand icons sit beside this script (assets/checkout/brands/).
  var script = doc.currentScript;
  var brandsBase = "";
  try { brandsBase = script && script.src ? new URL("brands/", script.src).href : ""; } catch (e) { brandsBase = ""; }

  // Server error codes -> message key. The object between the markers must stay
  // strict JSON: the server (checkout.Assets.CodeMessages) parses it to check
  // that every key is in i18n.js, and the tests check every code against the
  // one code table (internal/apierr/codes.go) and every code the gateway can
  // answer the page against this table. Unknown codes fall back on the status.
  var CODE_MESSAGES = /*BEGIN-CODES*/
{
  "card_invalid": "srv_card_invalid",
  "card_brand_unsupported": "srv_card_invalid",
  "card_expired": "srv_card_expired",
  "cvc_invalid": "srv_cvc_invalid",
  "card_enumeration": "srv_card_refused",
  "card_undecryptable": "srv_stale",
  "stale_ciphertext": "srv_stale",
  "key_unknown": "srv_stale",
  "invalid_jwe": "srv_stale",
  "unsupported_algorithm": "srv_stale",
  "session_mismatch": "srv_stale",
  "session_not_found": "srv_session_expired",
  "session_expired": "srv_session_expired",
  "session_completed": "srv_session_expired",
  "session_busy": "srv_busy",
  "too_many_attempts": "srv_too_many",
  "rate_limited": "srv_too_many",
  "keyservice_unavailable": "srv_unavailable",
  "unavailable": "srv_unavailable",
  "bad_request": "srv_generic",
  "duplicate_key": "srv_generic",
  "invalid_field": "srv_generic",
  "too_large": "srv_generic",
  "internal": "srv_generic"
}
/*END-CODES*/;
  var STATUS_MESSAGES = { 410: "srv_session_expired", 422: "srv_card_invalid", 429: "srv_too_many",
    502: "srv_unavailable", 503: "srv_unavailable", 504: "srv_unavailable" };
  // After these the page cannot succeed any more; the form stays disabled.
  var TERMINAL = { srv_session_expired: true, srv_stale: true };
  var TOKEN_RE = /^[A-Za-z0-9_-]{1,200}$/;

  function isOrigin(s) {
    try { return new URL(s).origin === s; } catch (e) { return false; }
  }

  function safeURL(s) {
    if (!s) return "";
    try {
      var u = new URL(s, root.location.href);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : "";
    } catch (e) { return ""; }
  }

  var data = form.dataset;
  var cfg = Object.freeze({
    session: data.session || "",
    lang: data.lang || I18n.pick(data.locale),
    parentOrigins: (data.parentOrigin || "").split(/\s+/).filter(isOrigin),
    returnURL: safeURL(data.returnUrl),
    submitURL: data.submitUrl || "",
    keysURL: data.keysUrl || "/v1/keys",
    amount: /^\d{1,15}(\.\d{1,4})?$/.test(data.amount || "") ? data.amount : "",
    currency: /^[A-Z]{3}$/.test(data.currency || "") ? data.currency : "",
    submitKey: /^submit_[a-z_]+$/.test(data.submitKey || "") ? data.submitKey : "submit_save"
  });

  function t(key, params) { return I18n.t(cfg.lang, key, params); }

  // numberLocale is the session's locale as Intl takes it ("de_DE" is
  // "de-DE"), or the page's language when the browser does not know it.
  function numberLocale() {
    var tag = String(data.locale || "").replace(/_/g, "-");
    try {
      if (tag && root.Intl.NumberFormat.supportedLocalesOf([tag]).length) return tag;
    } catch (e) { /* not a well-formed tag */ }
    return cfg.lang;
  }

  // formatAmount writes the session's amount for the shopper's locale
  // ("€25.00", "25,00 €") with exactly the currency's decimals: the server
  // sent them, so nothing is rounded. The decimal goes to Intl as a string,
  // which it reads exactly. "" when there is no amount or Intl cannot.
  function formatAmount() {
    if (!cfg.amount || !cfg.currency || !root.Intl || !root.Intl.NumberFormat) return "";
    var dot = cfg.amount.indexOf(".");
    var places = dot < 0 ? 0 : cfg.amount.length - dot - 1;
    try {
      return new root.Intl.NumberFormat(numberLocale(), { style: "currency", currency: cfg.currency,
        minimumFractionDigits: places, maximumFractionDigits: places }).format(cfg.amount);
    } catch (e) { return ""; }
  }

  var el = {
    fields: doc.getElementById("bg-fields"),
    number: doc.getElementById("bg-number"),
    exp: doc.getElementById("bg-exp"),
    cvc: doc.getElementById("bg-cvc"),
    name: doc.getElementById("bg-name"),
    brand: doc.getElementById("bg-brand"),
    brands: doc.getElementById("bg-brands"),
    cvcHint: doc.getElementById("bg-cvc-hint"),
    summary: doc.getElementById("bg-summary"),
    amount: doc.getElementById("bg-amount"),
    submit: doc.getElementById("bg-submit"),
    status: doc.getElementById("bg-status")
  };
  var errorEl = {
    number: doc.getElementById("bg-number-error"),
    exp: doc.getElementById("bg-exp-error"),
    cvc: doc.getElementById("bg-cvc-error")
  };

  var embedded = root.parent !== root;
  // The origin we post to. With one allowed origin it is known at once; with
  // several, the parent's hello message (checked against the list) chooses.
  var parentTarget = cfg.parentOrigins.length === 1 ? cfg.parentOrigins[0] : "";
  var busy = false, done = false, lockTimer = 0, lockedUntil = 0;

  function setStatus(key, params, kind) {
    el.status.setAttribute("data-kind", kind || "info");
    el.status.textContent = key ? t(key, params) : "";
  }

  function setFieldError(name, code, params) {
    var input = el[name];
    input.setAttribute("aria-invalid", code ? "true" : "false");
    input.parentNode.classList.toggle("bg-invalid", !!code);
    errorEl[name].textContent = code ? t("err_" + code, params) : "";
  }

  // reformat rewrites an input through formatter and keeps the caret after the
  // same number of digits, so editing in the middle of a number works.
  function reformat(input, formatter) {
    var old = input.value;
    var next = formatter(old);
    if (next === old) return;
    var caret = input.selectionStart == null ? old.length : input.selectionStart;
    var atEnd = caret >= old.length;
    var want = Card.digitsOf(old.slice(0, caret)).length, pos = next.length;
    if (!atEnd) {
      for (var i = 0, seen = 0; i < next.length; i++) {
        if (seen === want) { pos = i; break; }
        if (next.charCodeAt(i) >= 48 && next.charCodeAt(i) <= 57) seen++;
      }
    }
    input.value = next;
    if (doc.activeElement === input) input.setSelectionRange(pos, pos);
  }

  function currentBrand() {
    return Card.detectBrand(Card.digitsOf(el.number.value));
  }

  // renderBrands shows every accepted brand before anything is typed, from
  // card.js's list (the key service's brands). Elements only, no markup
  // strings: the page runs under Trusted Types.
  function renderBrands() {
    if (!el.brands || !brandsBase) return;
    Card.brands.forEach(function (b) {
      var li = doc.createElement("li");
      li.setAttribute("data-brand", b);
      var img = doc.createElement("img");
      img.src = brandsBase + b + ".svg";
      img.alt = Card.brandName(b);
      img.width = 40;
      img.height = 26;
      li.appendChild(img);
      el.brands.appendChild(li);
    });
  }

  function updateBrand() {
    var brand = currentBrand();
    el.brand.setAttribute("data-brand", brand || "unknown");
    el.brand.setAttribute("aria-label", brand ? t("brand_label", { brand: Card.brandName(brand) }) : t("brand_unknown"));
    el.cvc.setAttribute("maxlength", String(Card.cvcLength(brand) || 4));
    // Where the code is and how long, for this brand (Amex: 4, on the front).
    var hint = !brand ? "hint_cvc" : Card.cvcLength(brand) === 4 ? "hint_cvc_front" : "hint_cvc_back";
    if (el.cvcHint) el.cvcHint.textContent = t(hint);
    if (el.brands) {
      if (brand) el.brands.setAttribute("data-detected", brand);
      else el.brands.removeAttribute("data-detected");
      var items = el.brands.children;
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute("data-brand") === brand) items[i].setAttribute("data-active", "");
        else items[i].removeAttribute("data-active");
      }
    }
  }

  function checkNumber() {
    var r = Card.inspect(el.number.value);
    setFieldError("number", r.error);
    return r.error === "";
  }

  function checkExp() {
    var r = Card.parseExpiry(el.exp.value, new Date());
    setFieldError("exp", r.error);
    return r.error === "";
  }

  function checkCVC() {
    var brand = currentBrand();
    var code = Card.validateCVC(el.cvc.value, brand);
    setFieldError("cvc", code, { n: Card.cvcLength(brand) || "3-4" });
    return code === "";
  }

  var checks = { number: checkNumber, exp: checkExp, cvc: checkCVC };

  // live judges a field as it is typed: card.js says when a verdict is
  // final (a number at its full length failing Luhn, a month 13); "" clears
  // the field's error. Undecided input clears an error shown before, rather
  // than call a number too short while the shopper is still typing it.
  var live = {
    number: function () { return Card.typingError(el.number.value); },
    exp: function () { return Card.typingExpiryError(el.exp.value, new Date()); }
  };

  function wire(name, formatter) {
    var input = el[name];
    input.addEventListener("input", function () {
      reformat(input, formatter);
      if (name === "number") updateBrand();
      var flagged = input.getAttribute("aria-invalid") === "true";
      var verdict = live[name] ? live[name]() : null;
      if (verdict) setFieldError(name, verdict);
      else if (verdict === "" || (flagged && live[name])) setFieldError(name, "");
      // Once a field has been flagged, re-check as the shopper fixes it.
      else if (flagged) checks[name]();
      if (name === "number" && el.cvc.getAttribute("aria-invalid") === "true") checkCVC();
    });
    input.addEventListener("blur", function () {
      if (input.value !== "") checks[name]();
    });
  }

  wire("number", Card.formatNumber);
  wire("exp", Card.formatExpiry);
  wire("cvc", function (v) { return Card.formatCVC(v, currentBrand()); });

  function clearCardFields() {
    el.number.value = "";
    el.exp.value = "";
    el.cvc.value = "";
    el.name.value = "";
    updateBrand();
  }

  function post(msg) {
    if (embedded && parentTarget) root.parent.postMessage(msg, parentTarget);
  }

  function postResize() {
    post({ type: MSG_RESIZE, height: Math.ceil(doc.body.getBoundingClientRect().height) });
  }

  root.addEventListener("message", function (ev) {
    // Only the direct parent, from an allowed origin, may pick the target.
    if (!embedded || ev.source !== root.parent || cfg.parentOrigins.indexOf(ev.origin) < 0) return;
    if (!ev.data) return;
    if (ev.data.type === MSG_FOCUS) {
      // The shopper just asked to pay (embed.js sends this only then): the
      // card number is where they type next.
      if (!done && !el.fields.disabled) el.number.focus();
      return;
    }
    if (ev.data.type !== MSG_HELLO) return;
    parentTarget = ev.origin;
    post({ type: MSG_READY });
    postResize();
  });

  function codedError(code, status, retryAfter) {
    var e = new Error(code);
    e.code = code;
    e.status = status || 0;
    e.retryAfter = retryAfter || 0;
    return e;
  }

  function retryAfterSeconds(h) {
    if (!h) return 0;
    if (/^\d+$/.test(h.trim())) return Math.min(Number(h.trim()), 86400);
    var when = Date.parse(h);
    return isNaN(when) ? 0 : Math.max(0, Math.ceil((when - Date.now()) / 1000));
  }

  // request wraps fetch with the options every call needs: same origin only (a
  // tampered data attribute cannot send ciphertext elsewhere), no cookies, no
  // referrer, no redirects.
  async function request(url, init) {
    var opts = Object.assign({ credentials: "omit", mode: "same-origin", referrerPolicy: "no-referrer",
      redirect: "error", cache: "no-store" }, init);
    var resp;
    try {
      resp = await root.fetch(url, opts);
    } catch (e) {
      throw codedError("network");
    }
    var body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      var code = body && body.error && typeof body.error.code === "string" ? body.error.code : "";
      throw codedError(code, resp.status, retryAfterSeconds(resp.headers.get("Retry-After")));
    }
    return body;
  }

  function messageFor(err) {
    if (err.code === "network") return "srv_network";
    if (CODE_MESSAGES.hasOwnProperty(err.code)) return CODE_MESSAGES[err.code];
    if (STATUS_MESSAGES.hasOwnProperty(err.status)) return STATUS_MESSAGES[err.status];
    if (err.code === "no_key") return "srv_unavailable";
    return "srv_generic";
  }

  function showError(err) {
    var key = messageFor(err);
    if (key === "srv_too_many") {
      var secs = err.retryAfter;
      if (secs > 0) {
        setStatus("srv_too_many", { seconds: secs }, "error");
        el.submit.disabled = true;
        lockedUntil = Date.now() + secs * 1000;
        clearTimeout(lockTimer);
        lockTimer = setTimeout(function () { if (!done) el.submit.disabled = false; }, secs * 1000);
        return;
      }
      key = "srv_too_many_later";
    }
    setStatus(key, null, "error");
    if (TERMINAL[key]) {
      done = true;
      el.fields.disabled = true;
      el.status.focus();
      if (key === "srv_session_expired") post({ type: MSG_ERROR, code: "session_expired" });
    }
  }

  // succeed says so, and puts focus on that message: the fields it
  // disables would otherwise drop focus to the page, and a keyboard or
  // screen-reader user would have to look for the outcome (the live region
  // announces it too).
  function succeed(token) {
    done = true;
    el.fields.disabled = true;
    var redirect = !embedded && cfg.returnURL;
    setStatus(redirect ? "status_redirect" : "status_success", null, "success");
    el.status.focus();
    if (embedded && parentTarget) {
      post({ type: MSG_TOKEN, token: token });
      return;
    }
    if (redirect) {
      var u = new URL(cfg.returnURL);
      u.searchParams.set("token", token);
      u.searchParams.set("session", cfg.session);
      root.location.assign(u.href);
    }
  }

  async function submit() {
    var ok = [checkNumber(), checkExp(), checkCVC()];
    var names = ["number", "exp", "cvc"];
    for (var i = 0; i < ok.length; i++) {
      if (!ok[i]) {
        setStatus("err_form", null, "error");
        el[names[i]].focus();
        return;
      }
    }
    if (!JWE.available()) {
      setStatus("err_browser", null, "error");
      return;
    }

    busy = true;
    el.submit.disabled = true;
    setStatus("status_processing", null, "info");
    var sent = false;
    try {
      var exp = Card.parseExpiry(el.exp.value, new Date());
      var iat = Math.floor(Date.now() / 1000);
      var header = { bg_sid: cfg.session };
      var recipient = await JWE.importKey(JWE.selectKey(await request(cfg.keysURL, { method: "GET" })));
      var cardJWE = await JWE.encryptJSON(recipient, {
        pan: Card.digitsOf(el.number.value),
        exp_month: exp.month,
        exp_year: exp.year,
        name: el.name.value.trim(),
        iat: iat
      }, header);
      var cvcJWE = await JWE.encryptJSON(recipient, { cvc: el.cvc.value.trim(), iat: iat }, header);
      var pending = request(cfg.submitURL, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ card_jwe: cardJWE, cvc_jwe: cvcJWE })
      });
      sent = true;
      // The ciphertext is on its way: the plaintext leaves the page's DOM now,
      // whatever the answer.
      clearCardFields();
      var resp = await pending;
      var token = resp && typeof resp.token === "string" && TOKEN_RE.test(resp.token) ? resp.token : "";
      if (!token) throw codedError("bad_response");
      succeed(token);
    } catch (err) {
      // Only our own errors carry a string code (a DOMException's code is a number).
      showError(err && typeof err.code === "string" ? err : codedError("internal"));
      if (sent && !done) el.number.focus();
    } finally {
      busy = false;
      if (!done && Date.now() >= lockedUntil) el.submit.disabled = false;
      postResize();
    }
  }

  // Pressing the button must not move focus first: the field's blur would
  // check it and show or clear its error, the layout would shift under the
  // pointer, and the release would land off the button, so the click was
  // lost. The field keeps focus; the click submits, and submit() checks
  // every field anyway.
  el.submit.addEventListener("mousedown", function (ev) { ev.preventDefault(); });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (busy || done || el.submit.disabled) return;
    submit();
  });

  if (typeof root.ResizeObserver === "function") {
    new root.ResizeObserver(postResize).observe(doc.body);
  }

  // The button names the amount in the shopper's locale ("Pay €25.00"), or
  // says what the merchant chose; a shopper sent here by the merchant (not in
  // its iframe) also sees who is paid and how much.
  var amountText = formatAmount();
  if (amountText && el.amount) el.amount.textContent = amountText;
  if (cfg.amount && !amountText && el.amount) amountText = el.amount.textContent;
  el.submit.textContent = t(cfg.submitKey, { amount: amountText });
  if (el.summary && !embedded) el.summary.hidden = false;

  // The fields ship disabled so that, without this script, nothing can be typed
  // into a form that has no way to encrypt.
  renderBrands();
  updateBrand();
  el.fields.disabled = false;
  doc.documentElement.classList.add("bg-ready");
  post({ type: MSG_READY });
})(window, document);
