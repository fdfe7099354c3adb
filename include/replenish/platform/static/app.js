/* Replenish: live cutoff countdowns. The server renders the text; this only keeps it ticking, using the
   server's clock (body[data-now]) so a demo on historical dates counts down correctly too. */
(function () {
  "use strict";
  var serverNow = Date.parse(document.body.getAttribute("data-now") || "");
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function fmt(ms) {
    if (ms <= 0) { return "cutoff passed"; }
    var m = Math.floor(ms / 60000), d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
    if (d) { return d + "d " + h + "h left"; }
    if (h) { return h + "h " + (mm < 10 ? "0" : "") + mm + "m left"; }
    return mm + "m left";
  }
  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("[data-cutoff]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-cutoff")) - now;
      el.textContent = fmt(left);
      el.classList.toggle("soon", left > 0 && left < 3 * 3600 * 1000);
    });
  }
  document.addEventListener("htmx:afterSettle", tick);
  // Every request these pages make through htmx comes from a boosted link or form (hx-boost on <body>).
  // Anything else (an hx-get/hx-post/hx-trigger that got into the page) would carry the session's CSRF
  // header: refuse it before it is sent.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (!evt.detail || evt.detail.boosted !== true) { evt.preventDefault(); }
  });
  setInterval(tick, 30000);
})();
