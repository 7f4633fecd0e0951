/*
 * Blindgate JWE: builds the compact JWE of Contract 1 (docs/contracts.md)
 * with WebCrypto only, so the card is encrypted inside the shopper's browser and
 * the gateway never holds a key that can read it.
 *
 *   alg RSA-OAEP-256   (RSA modulus >= 3072 bits)
 *   alg ECDH-ES+A256KW (P-256 or P-384; Concat KDF of RFC 7518 section 4.6.2)
 *   enc A256GCM, AAD = ASCII of the base64url protected header, so the header
 *   (kid, bg_sid) cannot be swapped without breaking decryption.
 *
 * Everything is exposed on one frozen namespace, window.BlindgateJWE, so a later
 * script cannot quietly replace a function.
 */
(function (root) {
  "use strict";

  var ALG_RSA = "RSA-OAEP-256";
  var ALG_ECDH = "ECDH-ES+A256KW";
  var ENC = "A256GCM";
  var MIN_RSA_BITS = 3072;
  // Bits of the ECDH shared secret Z per curve (the x coordinate).
  var CURVE_BITS = { "P-256": 256, "P-384": 384 };
  // Header names the caller may not set: they are ours, and zip/crit are refused
  // by the key service anyway.
  var RESERVED = { alg: 1, enc: 1, kid: 1, epk: 1, zip: 1, crit: 1, apu: 1, apv: 1, iv: 1, tag: 1, p2s: 1, p2c: 1 };

  // Captured once: a script that later swaps window.crypto cannot intercept keys.
  var cryptoObj = root.crypto;
  var subtle = cryptoObj && cryptoObj.subtle;

  function JWEError(code, message) {
    var e = new Error(message || code);
    e.name = "JWEError";
    e.code = code;
    return e;
  }

  function available() {
    return !!(subtle && root.isSecureContext !== false);
  }

  function b64uEncode(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return root.btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function b64uDecode(str) {
    if (typeof str !== "string" || !/^[A-Za-z0-9_-]*$/.test(str)) {
      throw JWEError("malformed", "not base64url");
    }
    var s = str.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = root.atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

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

  // rsaBits returns the size of a base64url big-endian modulus in bits.
  function rsaBits(n) {
    var b = b64uDecode(n), i = 0;
    while (i < b.length && b[i] === 0) i++;
    if (i === b.length) return 0;
    var bits = (b.length - i - 1) * 8, top = b[i];
    while (top) { bits++; top >>= 1; }
    return bits;
  }

  function usable(k) {
    if (!k || typeof k !== "object" || k.use !== "enc") return false;
    if (typeof k.kid !== "string" || k.kid === "") return false;
    if (k.alg === ALG_RSA) {
      if (k.kty !== "RSA" || typeof k.n !== "string" || typeof k.e !== "string") return false;
      try { return rsaBits(k.n) >= MIN_RSA_BITS; } catch (e) { return false; }
    }
    if (k.alg === ALG_ECDH) {
      return k.kty === "EC" && CURVE_BITS.hasOwnProperty(k.crv) &&
        typeof k.x === "string" && typeof k.y === "string";
    }
    return false;
  }

  // selectKey picks the first key of a JWKS with use "enc" and an alg we build.
  // The order of the set is the key service's preference (newest KEK first).
  function selectKey(jwks) {
    var keys = jwks && Array.isArray(jwks.keys) ? jwks.keys : [];
    for (var i = 0; i < keys.length; i++) {
      if (usable(keys[i])) return keys[i];
    }
    throw JWEError("no_key", "no usable encryption key in the key set");
  }

  // importKey turns a public JWK into a recipient for encrypt. Only the public
  // members are copied, so a stray "d" or "key_ops" in the set changes nothing.
  async function importKey(jwk) {
    if (!available()) throw JWEError("unsupported", "WebCrypto is not available");
    if (!usable(jwk)) throw JWEError("no_key", "unsupported key");
    var key;
    if (jwk.alg === ALG_RSA) {
      key = await subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e, alg: ALG_RSA, ext: true },
        { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"]);
    } else {
      key = await subtle.importKey("jwk", { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y, ext: true },
        { name: "ECDH", namedCurve: jwk.crv }, true, []);
    }
    return Object.freeze({ kid: jwk.kid, alg: jwk.alg, crv: jwk.crv || "", key: key });
  }

  // concatKDF is the single-step KDF of NIST SP 800-56A as profiled by RFC 7518
  // section 4.6.2, with SHA-256 and empty PartyUInfo/PartyVInfo. One round of
  // SHA-256 gives the 256 bits that A256KW needs.
  async function concatKDF(z, algID, keyBits) {
    if (keyBits !== 256) throw JWEError("unsupported", "only 256-bit keys");
    var alg = ascii(algID);
    var otherInfo = concat(u32be(alg.length), alg, u32be(0), u32be(0), u32be(keyBits));
    var input = concat(u32be(1), z, otherInfo);
    try {
      return new Uint8Array(await subtle.digest("SHA-256", input));
    } finally {
      input.fill(0);
    }
  }

  function buildHeader(recipient, extra) {
    var h = { alg: recipient.alg, enc: ENC, kid: recipient.kid };
    if (extra) {
      Object.keys(extra).forEach(function (name) {
        if (RESERVED.hasOwnProperty(name)) throw JWEError("header", "reserved header " + name);
        if (typeof extra[name] !== "string" || extra[name] === "") throw JWEError("header", "header " + name + " must be a non-empty string");
        h[name] = extra[name];
      });
    }
    return h;
  }

  // encrypt returns the compact JWE of plaintext (a Uint8Array) for recipient
  // (from importKey). extra adds string members to the protected header, such
  // as {bg_sid: "<session>"}.
  async function encrypt(recipient, plaintext, extra) {
    if (!available()) throw JWEError("unsupported", "WebCrypto is not available");
    if (!(plaintext instanceof Uint8Array)) throw JWEError("malformed", "plaintext must be bytes");
    var header = buildHeader(recipient, extra);
    var cekRaw = cryptoObj.getRandomValues(new Uint8Array(32));
    try {
      var encryptedKey;
      if (recipient.alg === ALG_RSA) {
        encryptedKey = new Uint8Array(await subtle.encrypt({ name: "RSA-OAEP" }, recipient.key, cekRaw));
      } else if (recipient.alg === ALG_ECDH) {
        var eph = await subtle.generateKey({ name: "ECDH", namedCurve: recipient.crv }, true, ["deriveBits"]);
        var epk = await subtle.exportKey("jwk", eph.publicKey);
        header.epk = { kty: "EC", crv: epk.crv, x: epk.x, y: epk.y };
        var z = new Uint8Array(await subtle.deriveBits({ name: "ECDH", public: recipient.key }, eph.privateKey, CURVE_BITS[recipient.crv]));
        var kekRaw = await concatKDF(z, ALG_ECDH, 256);
        z.fill(0);
        var kek = await subtle.importKey("raw", kekRaw, { name: "AES-KW" }, false, ["wrapKey"]);
        kekRaw.fill(0);
        var cekKey = await subtle.importKey("raw", cekRaw, { name: "AES-GCM" }, true, ["encrypt"]);
        encryptedKey = new Uint8Array(await subtle.wrapKey("raw", cekKey, kek, { name: "AES-KW" }));
      } else {
        throw JWEError("unsupported", "unsupported alg");
      }
      var protectedB64 = b64uEncode(new TextEncoder().encode(JSON.stringify(header)));
      var cek = await subtle.importKey("raw", cekRaw, { name: "AES-GCM" }, false, ["encrypt"]);
      var iv = cryptoObj.getRandomValues(new Uint8Array(12));
      var sealed = new Uint8Array(await subtle.encrypt(
        { name: "AES-GCM", iv: iv, additionalData: ascii(protectedB64), tagLength: 128 }, cek, plaintext));
      var ct = sealed.subarray(0, sealed.length - 16), tag = sealed.subarray(sealed.length - 16);
      return [protectedB64, b64uEncode(encryptedKey), b64uEncode(iv), b64uEncode(ct), b64uEncode(tag)].join(".");
    } finally {
      cekRaw.fill(0);
    }
  }

  // encryptJSON serializes value, encrypts it and wipes the serialized bytes.
  // (JavaScript strings cannot be wiped; the byte copy at least can.)
  async function encryptJSON(recipient, value, extra) {
    var bytes = new TextEncoder().encode(JSON.stringify(value));
    try {
      return await encrypt(recipient, bytes, extra);
    } finally {
      bytes.fill(0);
    }
  }

  root.BlindgateJWE = Object.freeze({
    ALG_RSA: ALG_RSA,
    ALG_ECDH: ALG_ECDH,
    ENC: ENC,
    available: available,
    selectKey: selectKey,
    importKey: importKey,
    encrypt: encrypt,
    encryptJSON: encryptJSON,
    concatKDF: concatKDF,
    b64uEncode: b64uEncode,
    b64uDecode: b64uDecode
  });
})(window);
