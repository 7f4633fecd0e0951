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

  pay.addEventListener("click", function () {
    pay.disabled = true;
    errorBox.textContent = "";
    fetch("/api/session", { method: "POST" })
      .then(function (r) { if (!r.ok) { throw new Error("could not start checkout (" + r.status + ")"); } return r.json(); })
      .then(function (s) { return window.Blindgate.mount("#checkout", { session: s.id }); })
      .then(function (token) {
        document.getElementById("token").textContent = token;
        return fetch("/api/paid", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: token })
        }).then(function (r) { if (!r.ok) { throw new Error("could not confirm the payment (" + r.status + ")"); } return r.json(); });
      })
      .then(function (card) {
        document.getElementById("masked").textContent = card.brand + " •••• " + card.last4;
        document.getElementById("result").hidden = false;
        document.getElementById("checkout").textContent = "";
      })
      .catch(function (e) { fail(String(e && e.message || e)); });
  });
})();
