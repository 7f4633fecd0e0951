/*
 * Blindgate card rules for the checkout page: brand, length, spacing, Luhn,
 * expiry and CVC. They mirror keyservice/card so that the shopper hears about a
 * typing error before anything is encrypted; the key service remains the
 * authority and checks everything again after decryption.
 *
 * Exposed as the frozen namespace window.BlindgateCard. No function here keeps,
 * logs or sends a card number.
 */
(function (root) {
  "use strict";

  // [brand, first, last]: a number matches when its first len(first) digits,
  // read as an integer, lie in [first, last]. The longest matching prefix wins,
  // so 622126-622925 (Discover) beats 62 (UnionPay), which beats 6 (Maestro).
  var RANGES = [
    ["visa", "4", "4"],
    ["mastercard", "51", "55"],
    ["mastercard", "2221", "2720"],
    ["amex", "34", "34"],
    ["amex", "37", "37"],
    ["discover", "6011", "6011"],
    ["discover", "644", "649"],
    ["discover", "65", "65"],
    ["discover", "622126", "622925"],
    ["jcb", "3528", "3589"],
    ["diners", "300", "305"],
    ["diners", "3095", "3095"],
    ["diners", "36", "36"],
    ["diners", "38", "39"],
    ["unionpay", "62", "62"],
    ["maestro", "50", "50"],
    ["maestro", "56", "58"],
    ["maestro", "6", "6"]
  ];

  function span(a, b) {
    var out = [];
    for (var i = a; i <= b; i++) out.push(i);
    return out;
  }

  // full is the length most of the brand's cards have: a number that
  // reaches it and fails Luhn is flagged as the shopper types its last digit
  // (a longer card of the brand is flagged once it reaches its own length).
  var BRANDS = {
    visa: { name: "Visa", lengths: [13, 16, 18, 19], full: 16, cvc: 3 },
    mastercard: { name: "Mastercard", lengths: [16], full: 16, cvc: 3 },
    amex: { name: "American Express", lengths: [15], full: 15, cvc: 4 },
    discover: { name: "Discover", lengths: span(16, 19), full: 16, cvc: 3 },
    jcb: { name: "JCB", lengths: span(16, 19), full: 16, cvc: 3 },
    diners: { name: "Diners Club", lengths: [14].concat(span(16, 19)), full: 14, cvc: 3 },
    unionpay: { name: "UnionPay", lengths: span(14, 19), full: 16, cvc: 3 },
    maestro: { name: "Maestro", lengths: span(12, 19), full: 16, cvc: 3 }
  };
  var MAX_DIGITS = 19;
  var MAX_EXPIRY_YEARS = 20;

  function digitsOf(value) {
    return String(value == null ? "" : value).replace(/\D+/g, "");
  }

  function detectBrand(digits) {
    var best = "", bestLen = 0;
    for (var i = 0; i < RANGES.length; i++) {
      var r = RANGES[i], n = r[1].length;
      if (digits.length < n || n <= bestLen) continue;
      var p = Number(digits.slice(0, n));
      if (p >= Number(r[1]) && p <= Number(r[2])) {
        best = r[0];
        bestLen = n;
      }
    }
    return best;
  }

  function luhn(digits) {
    if (!/^\d+$/.test(digits)) return false;
    var sum = 0, dbl = false;
    for (var i = digits.length - 1; i >= 0; i--) {
      var d = digits.charCodeAt(i) - 48;
      if (dbl) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
      dbl = !dbl;
    }
    return sum % 10 === 0;
  }

  function groupsFor(brand, length) {
    if (brand === "amex") return [4, 6, 5];
    if (brand === "diners" && length <= 14) return [4, 6, 4];
    return [4, 4, 4, 4, 3];
  }

  // format spaces the digits the way the brand prints them on the card.
  function format(digits, brand) {
    var g = groupsFor(brand, digits.length), out = [], pos = 0;
    for (var i = 0; i < g.length && pos < digits.length; i++) {
      out.push(digits.slice(pos, pos + g[i]));
      pos += g[i];
    }
    if (pos < digits.length) out.push(digits.slice(pos));
    return out.join(" ");
  }

  function lengthsOf(brand) {
    return BRANDS[brand] ? BRANDS[brand].lengths.slice() : [];
  }

  function maxDigits(brand) {
    return BRANDS[brand] ? Math.max.apply(null, BRANDS[brand].lengths) : MAX_DIGITS;
  }

  function fullLength(brand) {
    return BRANDS[brand] ? BRANDS[brand].full : 0;
  }

  function cvcLength(brand) {
    return BRANDS[brand] ? BRANDS[brand].cvc : 0;
  }

  function brandName(brand) {
    return BRANDS[brand] ? BRANDS[brand].name : "";
  }

  // inspect checks a card number as typed (spaces and dashes allowed). error is
  // "" when valid, else one of number_empty, number_brand, number_length,
  // number_luhn (checked in that order).
  function inspect(value) {
    var digits = digitsOf(value);
    var brand = detectBrand(digits);
    var lengths = lengthsOf(brand);
    var r = {
      brand: brand,
      brandName: brandName(brand),
      digits: digits.length,
      formatted: format(digits, brand),
      maxDigits: maxDigits(brand),
      cvcLength: cvcLength(brand),
      lengthOK: lengths.indexOf(digits.length) >= 0,
      luhn: luhn(digits),
      valid: false,
      error: ""
    };
    if (digits.length === 0) r.error = "number_empty";
    else if (!brand) r.error = "number_brand";
    else if (!r.lengthOK) r.error = "number_length";
    else if (!r.luhn) r.error = "number_luhn";
    r.valid = r.error === "";
    return r;
  }

  // typingError is the verdict on a number while it is being typed: "" when
  // it is valid, "number_luhn" when it has reached the brand's full length
  // (or its longest) and fails Luhn, which more digits could not fix at that
  // length; null while it is undecided (too short, or a length the shopper
  // may be typing past), when only leaving the field or submitting judges it.
  function typingError(value) {
    var r = inspect(value);
    if (r.valid) return "";
    if (r.error === "number_luhn" && (r.digits === fullLength(r.brand) || r.digits === r.maxDigits)) return "number_luhn";
    return null;
  }

  // formatNumber is the input-field formatter: digits only, cut at the brand's
  // longest length, spaced per brand.
  function formatNumber(value) {
    var digits = digitsOf(value).slice(0, MAX_DIGITS);
    digits = digits.slice(0, maxDigits(detectBrand(digits)));
    return format(digits, detectBrand(digits));
  }

  // parseExpiry reads MM/YY (also MMYY, M/YY, MM/YYYY). The card is valid
  // through the last day of its month. error is "" or exp_empty, exp_format,
  // exp_month (not 01-12), exp_past, exp_far.
  function parseExpiry(value, now) {
    var s = String(value == null ? "" : value).trim();
    if (s === "") return { month: 0, year: 0, error: "exp_empty" };
    var m = /^(\d{1,2})\s*\/?\s*(\d{2}|\d{4})$/.exec(s);
    if (!m) return { month: 0, year: 0, error: "exp_format" };
    var month = Number(m[1]);
    var year = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
    if (month < 1 || month > 12) return { month: 0, year: 0, error: "exp_month" };
    now = now || new Date();
    var ny = now.getFullYear(), nm = now.getMonth() + 1;
    if (year < ny || (year === ny && month < nm)) return { month: month, year: year, error: "exp_past" };
    if (year > ny + MAX_EXPIRY_YEARS) return { month: month, year: year, error: "exp_far" };
    return { month: month, year: year, error: "" };
  }

  // typingExpiryError is the verdict on an expiry while it is being typed:
  // "exp_month" as soon as its two month digits are not 01-12, parseExpiry's
  // verdict once all four digits are there ("" when valid), null before.
  function typingExpiryError(value, now) {
    var s = String(value == null ? "" : value);
    var slash = /^\s*(\d{1,2})\s*\//.exec(s);
    var mm = slash ? slash[1] : digitsOf(s).slice(0, 2);
    if ((slash || mm.length === 2) && (Number(mm) < 1 || Number(mm) > 12)) return "exp_month";
    var r = parseExpiry(value, now);
    return r.error === "" || digitsOf(s).length >= 4 ? r.error : null;
  }

  // formatExpiry is the input-field formatter for MM/YY.
  function formatExpiry(value) {
    var s = String(value == null ? "" : value);
    var long = /^\s*(\d{1,2})\s*\/\s*(\d{4})\s*$/.exec(s);
    var d;
    if (long) {
      d = (long[1].length === 1 ? "0" : "") + long[1] + long[2].slice(2);
    } else if (/^\s*\d\s*\/\s*$/.test(s)) {
      d = "0" + digitsOf(s); // "1/" means January
    } else {
      d = digitsOf(s).slice(0, 4);
    }
    if (d.length === 1 && d > "1") d = "0" + d; // "4" can only be April
    return d.length > 2 ? d.slice(0, 2) + "/" + d.slice(2) : d;
  }

  // validateCVC: error is "" or cvc_empty, cvc_length. An unknown brand takes
  // 3 or 4 digits (the number itself will be refused anyway).
  function validateCVC(value, brand) {
    var s = String(value == null ? "" : value).trim();
    if (s === "") return "cvc_empty";
    if (!/^\d+$/.test(s)) return "cvc_length";
    var want = cvcLength(brand);
    if (want ? s.length !== want : (s.length < 3 || s.length > 4)) return "cvc_length";
    return "";
  }

  function formatCVC(value, brand) {
    return digitsOf(value).slice(0, cvcLength(brand) || 4);
  }

  root.BlindgateCard = Object.freeze({
    brands: Object.freeze(Object.keys(BRANDS)),
    digitsOf: digitsOf,
    detectBrand: detectBrand,
    brandName: brandName,
    luhn: luhn,
    format: format,
    formatNumber: formatNumber,
    lengthsOf: lengthsOf,
    maxDigits: maxDigits,
    fullLength: fullLength,
    cvcLength: cvcLength,
    inspect: inspect,
    typingError: typingError,
    parseExpiry: parseExpiry,
    typingExpiryError: typingExpiryError,
    formatExpiry: formatExpiry,
    validateCVC: validateCVC,
    formatCVC: formatCVC
  });
})(window);
