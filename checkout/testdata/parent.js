// Test merchant page: mounts the checkout with embed.js, then lets impostor
// frames (another origin, and another frame of the gateway origin) and the page
// itself post fake tokens. window.__token must end up as the real token only.
(function () {
  "use strict";
  var seen = window.__seen = [];
  window.addEventListener("message", function (ev) {
    var d = ev.data || {};
    seen.push({ origin: ev.origin, type: String(d.type || ""), token: String(d.token || "") });
  });
  var q = new URLSearchParams(window.location.search);
  function mount() {
    window.Blindgate.mount("#slot", { session: q.get("session") }).then(
      function (token) { window.__token = token; },
      function (err) { window.__mountError = String(err); });
  }
  if (q.get("button") === "1") {
    // A shop's "Pay with card": the form is mounted by the shopper's click.
    var b = document.createElement("button");
    b.id = "pay";
    b.type = "button";
    b.textContent = "Pay with card";
    b.addEventListener("click", function () { b.disabled = true; mount(); });
    document.body.appendChild(b);
    return;
  }
  mount();
  // Created after mount, so its listener is in place before they can post.
  ["evil1", "evil2"].forEach(function (k) {
    var f = document.createElement("iframe");
    f.src = q.get(k);
    f.title = k;
    document.body.appendChild(f);
  });
  window.postMessage({ type: "blindgate:token", token: "tok_self" }, "*");
})();
