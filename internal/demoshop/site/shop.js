// The demo shop's page script: asks the shop's server for a checkout session,
// mounts Blindgate's hosted form, and shows what a shop shows its shopper
// (brand, last 4) as the server reports it for this browser's checkout. The
// card itself, its BIN and its fingerprint never reach this page.
(function () {
  "use strict";
  var pay = document.getElementById("pay");
  var errorBox = document.getElementById("error");
  if (!pay) return;

  function fail(msg) { errorBox.textContent = msg; pay.disabled = false; }

  // refused turns an error answer into a message that carries its code
  // ({"error":{"code","message"}}, the gateway's or the shop server's), so
  // whoever set the shop up can tell a wrong key from a gateway that is down.
  function refused(r, what) {
    return r.json().then(function (b) {
      var e = (b && b.error) || {};
      return e.code ? e.code + (e.message ? ": " + e.message : "") : "HTTP " + r.status;
    }, function () { return "HTTP " + r.status; }).then(function (detail) {
      throw new Error(what + " (" + detail + ")");
    });
  }

  pay.addEventListener("click", function () {
    pay.disabled = true;
    errorBox.textContent = "";
    fetch("/api/session", { method: "POST" })
      .then(function (r) { return r.ok ? r.json() : refused(r, "The shop could not start a checkout"); })
      .then(function (s) { return window.Blindgate.mount("#checkout", { session: s.id }); })
      .then(function (token) {
        document.getElementById("token").textContent = token;
        return fetch("/api/paid", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: token })
        }).then(function (r) { return r.ok ? r.json() : refused(r, "The shop could not confirm the payment"); });
      })
      .then(function (card) {
        document.getElementById("masked").textContent = card.brand + " •••• " + card.last4;
        document.getElementById("result").hidden = false;
        document.getElementById("checkout").textContent = "";
      })
      .catch(function (e) { fail(String(e && e.message || e)); });
  });
})();
