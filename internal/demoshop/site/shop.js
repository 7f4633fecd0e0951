// The demo shop's page script: asks the shop's server for a checkout session,
// mounts Blindgate's hosted form, and shows the masked card the server read
// with the token. The card itself never reaches this page.
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
        return fetch("/api/token/" + encodeURIComponent(token)).then(function (r) { return r.json(); });
      })
      .then(function (card) {
        var exp = String(card.exp_month).padStart(2, "0") + "/" + card.exp_year;
        document.getElementById("masked").textContent = card.brand + " " + card.bin + "…" + card.last4 + " exp " + exp;
        document.getElementById("result").hidden = false;
        document.getElementById("checkout").textContent = "";
      })
      .catch(function (e) { fail(String(e && e.message || e)); });
  });
})();
