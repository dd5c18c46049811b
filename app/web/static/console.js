// The console's only script: CSRF header on htmx requests, the register dialog, countdowns.
(function () {
  "use strict";

  function readCookie(name) {
    const prefix = name + "=";
    for (const part of document.cookie.split(";")) {
      const trimmed = part.trim();
      if (trimmed.startsWith(prefix)) return decodeURIComponent(trimmed.slice(prefix.length));
    }
    return null;
  }

  // Double-submit CSRF: echo the cookie in the header the server checks.
  document.addEventListener("htmx:configRequest", function (event) {
    const token = readCookie("polaris_csrf");
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  // Content swapped into a dialog opens it.
  document.addEventListener("htmx:afterSwap", function (event) {
    const dialog = event.detail.target.closest("dialog");
    if (dialog && !dialog.open) dialog.showModal();
    startCountdowns(event.detail.target);
  });

  document.addEventListener("click", function (event) {
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // A copy button copies the text of the element its data-copy names; without clipboard
  // access (a page not served over https), the text is selected for the person to copy.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const done = function () { button.textContent = "Copied"; };
    const select = function () { window.getSelection().selectAllChildren(source); };
    if (navigator.clipboard) navigator.clipboard.writeText(source.textContent.trim()).then(done, select);
    else select();
  });

  // Escape closes a dialog without cancelling its code; say goodbye to the code explicitly.
  document.addEventListener("close", function (event) {
    if (event.target.id === "register-dialog") {
      const body = event.target.querySelector("#register-dialog-body");
      if (body) body.replaceChildren();
    }
  }, true);

  function asClock(seconds) {
    return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
  }

  // Counts down from the server's expiry; the browser clock only measures elapsed time.
  function startCountdowns(root) {
    for (const el of root.querySelectorAll("[data-countdown]")) {
      if (el.dataset.started) continue;
      el.dataset.started = "1";
      const total = Math.max(0, (Date.parse(el.dataset.countdown) - Date.parse(el.dataset.serverNow || new Date().toISOString())) / 1000);
      const started = performance.now();
      const tick = function () {
        if (!el.isConnected) return;
        const left = Math.max(0, Math.ceil(total - (performance.now() - started) / 1000));
        el.textContent = left === 0 ? "expired" : el.dataset.format === "clock" ? asClock(left) : left + " s";
        el.classList.toggle("expired", left === 0);
        if (left > 0) setTimeout(tick, 250);
      };
      tick();
    }
  }

  document.addEventListener("DOMContentLoaded", function () { startCountdowns(document); });
})();
