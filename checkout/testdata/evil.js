// An impostor frame: posts a fake token and a fake resize to its parent.
(function () {
  "use strict";
  window.parent.postMessage({ type: "blindgate:token", token: "tok_evil_" + window.location.port }, "*");
  window.parent.postMessage({ type: "blindgate:resize", height: 5 }, "*");
})();
