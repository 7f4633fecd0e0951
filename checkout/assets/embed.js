/*
 * Blindgate embed script, served as /embed.js for merchant pages:
 *
 *   <script src="https://pay.example/embed.js" integrity="sha384-..." crossorigin="anonymous"></script>
 *   Blindgate.mount("#card", { session: "cs_..." }).then(function (token) { ... });
 *
 * The hosted checkout runs in an iframe on the gateway's origin, so the card
 * never touches the merchant page. The token comes back by postMessage, and a
 * message counts only when it comes from that very iframe (event.source) on the
 * gateway origin (event.origin); anything else on the page is ignored.
 */
(function (root, doc) {
  "use strict";

  // currentScript is only set while this file first runs, so read it now.
  var self = doc.currentScript;
  var scriptOrigin = "";
  try { scriptOrigin = self && self.src ? new URL(self.src, root.location.href).origin : ""; } catch (e) { scriptOrigin = ""; }

  var SESSION_RE = /^[A-Za-z0-9_-]{1,128}$/;
  var MIN_HEIGHT = 120, MAX_HEIGHT = 2000;

  function originOf(s) {
    var o = new URL(s, root.location.href).origin;
    if (!o || o === "null") throw new Error("Blindgate: invalid gateway URL");
    return o;
  }

  // userAsked reports whether the page is handling the shopper's own click
  // or key press (transient user activation), as when a "Pay with card"
  // button mounts the form.
  function userAsked() {
    var ua = root.navigator && root.navigator.userActivation;
    return !!(ua && ua.isActive);
  }

  // mount puts the checkout for opts.session into target (a selector or an
  // element) and resolves with the card token. opts.gateway overrides the
  // gateway origin, which defaults to the origin this script was loaded from.
  // Once the form is ready, focus moves to its card number if the mount
  // answers the shopper's click or key press (opts.focus true or false
  // decides instead); a form mounted with the page takes no focus.
  function mount(target, opts) {
    return new Promise(function (resolve, reject) {
      opts = opts || {};
      var wantFocus = typeof opts.focus === "boolean" ? opts.focus : userAsked();
      var host = typeof target === "string" ? doc.querySelector(target) : target;
      if (!host || typeof host.appendChild !== "function") throw new Error("Blindgate: mount target not found");
      var session = String(opts.session || "");
      if (!SESSION_RE.test(session)) throw new Error("Blindgate: invalid session id");
      var origin = opts.gateway ? originOf(opts.gateway) : scriptOrigin;
      if (!origin) throw new Error("Blindgate: unknown gateway origin; pass opts.gateway");

      var frame = doc.createElement("iframe");
      frame.src = origin + "/checkout/" + encodeURIComponent(session);
      frame.title = opts.title || "Secure card form";
      frame.className = "blindgate-frame";
      frame.setAttribute("scrolling", "no");
      frame.style.width = "100%";
      frame.style.border = "0";
      frame.style.height = "460px";

      function finish() {
        root.removeEventListener("message", onMessage);
      }

      function onMessage(ev) {
        // Both checks: the origin alone would accept any other frame of the
        // gateway, the source alone would accept our frame after it navigated away.
        if (ev.origin !== origin || ev.source !== frame.contentWindow) return;
        var d = ev.data;
        if (!d || typeof d !== "object" || typeof d.type !== "string") return;
        if (d.type === "blindgate:token") {
          if (typeof d.token !== "string" || d.token === "") return;
          finish();
          resolve(d.token);
        } else if (d.type === "blindgate:ready") {
          if (wantFocus) {
            wantFocus = false;
            // The frame first, then its field: a cross-origin frame may move
            // focus within itself only once it has it.
            frame.focus();
            if (frame.contentWindow) frame.contentWindow.postMessage({ type: "blindgate:focus" }, origin);
          }
        } else if (d.type === "blindgate:resize") {
          var h = Number(d.height);
          if (isFinite(h)) frame.style.height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.ceil(h))) + "px";
        } else if (d.type === "blindgate:error" && d.code === "session_expired") {
          finish();
          reject(new Error("Blindgate: session expired"));
        }
      }

      root.addEventListener("message", onMessage);
      frame.addEventListener("load", function () {
        // Tells the page which of its allowed parent origins embeds it.
        if (frame.contentWindow) frame.contentWindow.postMessage({ type: "blindgate:hello" }, origin);
      });
      host.appendChild(frame);
    });
  }

  root.Blindgate = Object.freeze({ mount: mount });
})(window, document);
