/*
 * Blindgate back office: the operator browser's half of an end-to-end
 * encrypted reveal (docs/contracts.md, "Back office"), with WebCrypto and
 * WebAuthn only.
 *
 *   - a fresh ECDH P-256 key pair per reveal; the private key is generated
 *     non-extractable, so not even this script can read or send it;
 *   - the RFC 7638 thumbprint of its public key (jkt);
 *   - the reveal challenge the operator's passkey signs: SHA-256 of
 *     "blindgate-reveal-v1\n" nonce "\n" token "\n" reason "\n" jkt, the
 *     key service's own rule (keyservice/wire), so an assertion approves this
 *     token, this reason and this browser key, once;
 *   - decryption of the key service's answer, a compact JWE with alg ECDH-ES
 *     (direct key agreement), enc A256GCM: Concat KDF of RFC 7518 section
 *     4.6.2 with AlgorithmID "A256GCM", PartyUInfo/PartyVInfo from apu/apv
 *     (empty when absent) and 256 bits; AES-GCM with the ASCII of the
 *     protected header as additional data; bg_tok and bg_nonce in that
 *     header must be the token and nonce this page asked for;
 *   - the JSON encoding of WebAuthn credentials (base64url fields, as
 *     PublicKeyCredential.toJSON gives).
 *
 * Nothing here talks to the network, logs or stores anything. Everything is
 * on one frozen namespace, window.BlindgateBO, and the platform objects it
 * uses are captured at load, so a later script cannot swap a function.
 */
(function (root) {
  "use strict";

  var cryptoObj = root.crypto;
  var subtle = cryptoObj && cryptoObj.subtle;
  var credentials = root.navigator && root.navigator.credentials;
  var credCreate = credentials && credentials.create ? credentials.create.bind(credentials) : null;
  var credGet = credentials && credentials.get ? credentials.get.bind(credentials) : null;
  var TE = root.TextEncoder, TD = root.TextDecoder;

  var JWE_ALG = "ECDH-ES";
  var JWE_ENC = "A256GCM";
  var JWE_CTY = "blindgate-card+json";
  var COSE_ES256 = -7;
  // Header members this decrypter understands; anything else (zip, crit, a
  // key-wrapping alg) is refused rather than ignored.
  var KNOWN_HEADER = { alg: 1, enc: 1, epk: 1, apu: 1, apv: 1, cty: 1, typ: 1, kid: 1, bg_tok: 1, bg_nonce: 1 };

  function BOError(code, message) {
    var e = new Error(message || code);
    e.name = "BOError";
    e.code = code;
    return e;
  }

  // available reports whether this browser can do an encrypted reveal.
  function available() {
    return !!(subtle && TE && TD && root.isSecureContext !== false);
  }

  // passkeysAvailable reports whether WebAuthn can run here.
  function passkeysAvailable() {
    return !!(credCreate && credGet && root.PublicKeyCredential && root.isSecureContext !== false);
  }

  function b64uEncode(bytes) {
    if (!(bytes instanceof Uint8Array)) bytes = new Uint8Array(bytes);
    var s = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return root.btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function b64uDecode(str) {
    if (typeof str !== "string" || !/^[A-Za-z0-9_-]*$/.test(str) || str.length % 4 === 1) {
      throw BOError("malformed", "not base64url");
    }
    var s = str.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = root.atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function utf8(str) { return new TE().encode(str); }

  function ascii(str) {
    var out = new Uint8Array(str.length);
    for (var i = 0; i < str.length; i++) out[i] = str.charCodeAt(i) & 0x7f;
    return out;
  }

  function concat() {
    var len = 0, i;
    for (i = 0; i < arguments.length; i++) len += arguments[i].length;
    var out = new Uint8Array(len), off = 0;
    for (i = 0; i < arguments.length; i++) {
      out.set(arguments[i], off);
      off += arguments[i].length;
    }
    return out;
  }

  function u32be(n) {
    return new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  // WS is the reason rule's white space (wire.NormReason: Go's
  // unicode.IsSpace plus U+FEFF). JavaScript's \s lacks only U+0085 of
  // those; one differing character would make the passkey sign another
  // challenge than the key service recomputes.
  var WS = /[\s\u0085]+/;

  // normReason folds whitespace runs to one space and trims.
  function normReason(s) {
    return String(s).split(WS).filter(function (p) { return p !== ""; }).join(" ");
  }

  // newKeyPair makes the reveal's browser key pair. The private key is not
  // extractable: WebCrypto refuses to export it, to this script too.
  function newKeyPair() {
    if (!available()) return Promise.reject(BOError("unsupported", "WebCrypto is not available"));
    return subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  }

  function checkPublicJWK(jwk) {
    if (!jwk || jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.x !== "string" || typeof jwk.y !== "string" ||
        b64uDecode(jwk.x).length !== 32 || b64uDecode(jwk.y).length !== 32) {
      throw BOError("browser_key_invalid", "not a P-256 public key");
    }
  }

  // publicJWK is the public half as the reveal request carries it: the four
  // members of RFC 7638, nothing else (no key_ops, no ext).
  async function publicJWK(publicKey) {
    var j = await subtle.exportKey("jwk", publicKey);
    var out = { kty: j.kty, crv: j.crv, x: j.x, y: j.y };
    checkPublicJWK(out);
    return out;
  }

  // thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url): the
  // required members in lexicographic order, no whitespace.
  async function thumbprint(jwk) {
    checkPublicJWK(jwk);
    var canon = '{"crv":"' + jwk.crv + '","kty":"' + jwk.kty + '","x":"' + jwk.x + '","y":"' + jwk.y + '"}';
    return b64uEncode(await sha256(utf8(canon)));
  }

  // revealChallenge is the 32-byte WebAuthn challenge of a reveal (the key
  // service's wire.RevealChallenge). reason must already be normalised.
  function revealChallenge(nonce, token, reason, jkt) {
    return sha256(utf8("blindgate-reveal-v1\n" + nonce + "\n" + token + "\n" + reason + "\n" + jkt));
  }

  // concatKDF: RFC 7518 section 4.6.2 for ECDH-ES in direct mode, where the
  // AlgorithmID is the enc value and keydatalen the CEK's 256 bits. One
  // SHA-256 round gives exactly those bits.
  async function concatKDF(z, apu, apv) {
    var alg = ascii(JWE_ENC);
    var input = concat(u32be(1), z, u32be(alg.length), alg, u32be(apu.length), apu, u32be(apv.length), apv, u32be(256));
    try {
      return await sha256(input);
    } finally {
      input.fill(0);
    }
  }

  function isDigits(s, min, max) {
    return typeof s === "string" && s.length >= min && s.length <= max && /^[0-9]+$/.test(s);
  }

  // decryptCard opens the key service's answer with the reveal's private key
  // and checks that it is for expect.token and expect.nonce. It returns
  // {pan, exp_month, exp_year, name}; any deviation throws.
  async function decryptCard(jwe, privateKey, expect) {
    if (!available()) throw BOError("unsupported", "WebCrypto is not available");
    if (typeof jwe !== "string" || jwe.length > 16384) throw BOError("malformed", "not a compact JWE");
    var parts = jwe.split(".");
    if (parts.length !== 5) throw BOError("malformed", "not a compact JWE");
    var hdrB64 = parts[0];
    var hdr;
    try {
      hdr = JSON.parse(new TD("utf-8", { fatal: true }).decode(b64uDecode(hdrB64)));
    } catch (e) {
      throw BOError("malformed", "protected header is not JSON");
    }
    if (!hdr || typeof hdr !== "object" || Array.isArray(hdr)) throw BOError("malformed", "protected header is not an object");
    Object.keys(hdr).forEach(function (k) {
      if (!KNOWN_HEADER.hasOwnProperty(k)) throw BOError("unsupported", "header member " + k + " is not accepted");
    });
    if (hdr.alg !== JWE_ALG || hdr.enc !== JWE_ENC) throw BOError("unsupported", "alg/enc must be ECDH-ES/A256GCM");
    if (hdr.cty !== JWE_CTY) throw BOError("unsupported", "not a card");
    if (parts[1] !== "") throw BOError("malformed", "direct key agreement has no encrypted key");
    var epk = hdr.epk;
    checkPublicJWK(epk);
    var apu = hdr.apu === undefined ? new Uint8Array(0) : b64uDecode(hdr.apu);
    var apv = hdr.apv === undefined ? new Uint8Array(0) : b64uDecode(hdr.apv);
    var iv = b64uDecode(parts[2]), ct = b64uDecode(parts[3]), tag = b64uDecode(parts[4]);
    if (iv.length !== 12 || tag.length !== 16) throw BOError("malformed", "bad iv or tag length");

    var pub = await subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: epk.x, y: epk.y, ext: true },
      { name: "ECDH", namedCurve: "P-256" }, false, []);
    var z = new Uint8Array(await subtle.deriveBits({ name: "ECDH", public: pub }, privateKey, 256));
    var cekRaw = await concatKDF(z, apu, apv);
    z.fill(0);
    var cek = await subtle.importKey("raw", cekRaw, { name: "AES-GCM" }, false, ["decrypt"]);
    cekRaw.fill(0);
    var pt;
    try {
      pt = new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: iv, additionalData: ascii(hdrB64), tagLength: 128 },
        cek, concat(ct, tag)));
    } catch (e) {
      throw BOError("decrypt_failed", "the answer does not decrypt with this browser's key");
    }
    // Checked after decryption, when the header is known to be authentic:
    // an answer made for another token or another reveal is refused.
    if (!expect || hdr.bg_tok !== expect.token || hdr.bg_nonce !== expect.nonce) {
      pt.fill(0);
      throw BOError("binding_mismatch", "the answer is not for this token and request");
    }
    var card;
    try {
      card = JSON.parse(new TD("utf-8", { fatal: true }).decode(pt));
    } catch (e) {
      throw BOError("malformed", "the plaintext is not JSON");
    } finally {
      pt.fill(0);
    }
    if (!card || !isDigits(card.pan, 12, 19) || !(card.exp_month >= 1 && card.exp_month <= 12) ||
        !(card.exp_year >= 2000 && card.exp_year <= 2200)) {
      throw BOError("malformed", "the plaintext is not a card");
    }
    return { pan: card.pan, exp_month: card.exp_month | 0, exp_year: card.exp_year | 0, name: typeof card.name === "string" ? card.name : "" };
  }

  // credentialJSON encodes a PublicKeyCredential from create() or get() as
  // the JSON the server parses (base64url binary members).
  function credentialJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: b64uEncode(new Uint8Array(cred.rawId)),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: b64uEncode(new Uint8Array(r.clientDataJSON)) }
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = b64uEncode(new Uint8Array(r.attestationObject));
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = b64uEncode(new Uint8Array(r.authenticatorData));
      out.response.signature = b64uEncode(new Uint8Array(r.signature));
      if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = b64uEncode(new Uint8Array(r.userHandle));
    }
    return out;
  }

  function allowList(ids) {
    return (ids || []).map(function (id) { return { type: "public-key", id: b64uDecode(id) }; });
  }

  // createPasskey runs navigator.credentials.create for an enrolment
  // (opts from the gateway: challenge, rp, user, exclude, timeout) and
  // returns the attestation JSON. ES256 only; user verification required.
  async function createPasskey(opts) {
    if (!passkeysAvailable()) throw BOError("unsupported", "passkeys are not available in this browser");
    var cred = await credCreate({
      publicKey: {
        challenge: b64uDecode(opts.challenge),
        rp: { id: opts.rp.id, name: opts.rp.name },
        user: { id: b64uDecode(opts.user.id), name: opts.user.name, displayName: opts.user.display_name },
        pubKeyCredParams: [{ type: "public-key", alg: COSE_ES256 }],
        excludeCredentials: allowList(opts.exclude),
        authenticatorSelection: { residentKey: "preferred", requireResidentKey: false, userVerification: "required" },
        attestation: "none",
        timeout: opts.timeout || 120000
      }
    });
    if (!cred) throw BOError("cancelled", "no passkey was created");
    return credentialJSON(cred);
  }

  // getAssertion runs navigator.credentials.get with challenge (bytes) for
  // the given credential ids (base64url; none: any discoverable passkey of
  // this site) and returns the assertion JSON.
  async function getAssertion(challenge, rpId, ids, timeout) {
    if (!passkeysAvailable()) throw BOError("unsupported", "passkeys are not available in this browser");
    var cred = await credGet({
      publicKey: {
        challenge: challenge,
        rpId: rpId,
        allowCredentials: allowList(ids),
        userVerification: "required",
        timeout: timeout || 120000
      }
    });
    if (!cred) throw BOError("cancelled", "no passkey was used");
    return credentialJSON(cred);
  }

  // groupPAN spaces a number (or a mask of one) by sizes, the brand's groups
  // the page was given (checkout.PANGroups, "4,6,5"); a number longer than
  // they add up to is spaced in fours, as the checkout's field does.
  function groupPAN(s, sizes) {
    var g = String(sizes || "").split(",").map(function (x) { return parseInt(x, 10); }).filter(function (n) { return n > 0; });
    var total = g.reduce(function (a, b) { return a + b; }, 0);
    if (!g.length || s.length > total) g = [4, 4, 4, 4, 3];
    var out = [], pos = 0;
    for (var i = 0; i < g.length && pos < s.length; i++) {
      out.push(s.slice(pos, pos + g[i]));
      pos += g[i];
    }
    if (pos < s.length) out.push(s.slice(pos));
    return out.join(" ");
  }

  // maskPAN is the number as it stays once hidden: a dot for each digit but
  // the last 4, spaced like groupPAN (its real length, never 16 for 15).
  function maskPAN(pan, sizes) {
    var n = Math.max(pan.length - 4, 0);
    return groupPAN("\u2022".repeat(n) + pan.slice(n), sizes);
  }

  root.BlindgateBO = Object.freeze({
    groupPAN: groupPAN,
    maskPAN: maskPAN,
    available: available,
    passkeysAvailable: passkeysAvailable,
    b64uEncode: b64uEncode,
    b64uDecode: b64uDecode,
    normReason: normReason,
    newKeyPair: newKeyPair,
    publicJWK: publicJWK,
    thumbprint: thumbprint,
    revealChallenge: revealChallenge,
    concatKDF: concatKDF,
    decryptCard: decryptCard,
    credentialJSON: credentialJSON,
    createPasskey: createPasskey,
    getAssertion: getAssertion
  });
})(window);
