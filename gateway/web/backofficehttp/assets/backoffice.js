// Blindgate back office: the revealed card number's page. It hides the number
// after the delay the page sets (data-hide-after, seconds; 60 in production),
// and offers one guarded copy. It never logs, stores or sends the number.
(function () {
  'use strict';

  var box = document.getElementById('bo-reveal');
  if (!box) {
    return;
  }
  var panEl = document.getElementById('bo-pan');
  var copyBtn = document.getElementById('bo-copy');
  var hideBtn = document.getElementById('bo-hide');
  var countdown = document.getElementById('bo-countdown');

  var secs = parseInt(box.getAttribute('data-hide-after'), 10);
  if (!(secs > 0) || secs > 60) {
    secs = 60; // never longer than the policy, whatever the page says
  }
  // The number lives in this closure only until hide() drops it.
  var pan = panEl ? panEl.textContent.replace(/\s+/g, '') : '';
  var copied = false;
  var left = secs;
  var timer = null;

  function clearClipboard() {
    // Best effort: browsers may refuse a write without a user gesture.
    if (copied && navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText('').catch(function () {});
    }
  }

  function hide() {
    if (box.getAttribute('data-state') === 'hidden') {
      return;
    }
    pan = '';
    if (panEl) {
      panEl.textContent = ''; // gone from the DOM, not just from view
    }
    ['bo-exp', 'bo-name'].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) {
        el.textContent = '••••';
      }
    });
    box.setAttribute('data-state', 'hidden');
    copyBtn.disabled = true;
    hideBtn.disabled = true;
    countdown.textContent = 'Hidden. Reveal again from the token page if you still need it.';
    if (timer) {
      clearInterval(timer);
    }
    clearClipboard();
  }

  function tick() {
    left -= 1;
    if (left <= 0) {
      hide();
      return;
    }
    countdown.textContent = 'Hides in ' + left + ' s';
  }

  // No copying by selection: only the button below copies, once.
  document.addEventListener('copy', function (ev) {
    var sel = window.getSelection();
    if (panEl && sel && sel.rangeCount && sel.containsNode(panEl, true)) {
      ev.preventDefault();
    }
  });
  if (panEl) {
    panEl.addEventListener('selectstart', function (ev) { ev.preventDefault(); });
    panEl.addEventListener('contextmenu', function (ev) { ev.preventDefault(); });
  }

  copyBtn.addEventListener('click', function () {
    if (copied || !pan || !navigator.clipboard || !navigator.clipboard.writeText) {
      return;
    }
    copied = true;
    copyBtn.disabled = true;
    navigator.clipboard.writeText(pan).then(function () {
      copyBtn.textContent = 'Copied (clipboard clears when hidden)';
    }, function () {
      copyBtn.textContent = 'Copy failed';
    });
  });
  hideBtn.addEventListener('click', hide);

  // Leaving the page hides the number too, so back/forward cannot bring it back.
  window.addEventListener('pagehide', hide);

  copyBtn.disabled = !(navigator.clipboard && navigator.clipboard.writeText);
  hideBtn.disabled = false;
  countdown.textContent = 'Hides in ' + left + ' s';
  timer = setInterval(tick, 1000);
  setTimeout(hide, secs * 1000); // the interval may be throttled in a background tab
})();
