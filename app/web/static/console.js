// Every htmx request carries the CSRF token from the console's cookie (double submit).
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
  document.addEventListener("htmx:configRequest", function (event) {
    const token = readCookie("polaris_csrf");
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });
})();
