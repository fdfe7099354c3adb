/* Replenish: small enhancements over server-rendered pages that work without it.
   - live cutoff countdowns, on the server's clock (body[data-now]), so a demo on historical dates counts right;
   - times in the reader's own time zone (time[data-local]), each beside or under its zone's name ([data-local=zone]);
   - "select all" in the queue and the count of what is ticked;
   - the filters open on a laptop (closed on a phone, where the orders come first);
   - one confirmation open at a time;
   - after a boosted form, the focus on what happened (the error, or the notice);
   - a change sent after the session ended is typed again for the person once they are back on the order;
   - the confirmations of an order count the quantities typed but not yet saved (they are saved first);
   - the veto of any htmx request that is not a boosted link or form of ours. */
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
  // the reader's zone, in the pages' own words and notation (English, day before month, 24 h, as the server writes
  // its dates): a phone's locale put "Mi., 1. Mai" beside "Thu 02 May" and a 12 h clock beside the 24 h ones
  var LOCALE = "en-GB";
  var LOCAL_FORMATS = {
    "datetime": { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
                  hourCycle: "h23" },
    "day-time": { weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
  };
  function localTimes() {
    // times and the zone labels beside them change together: without the reader's zone known, the server's
    // times stay, labelled with the server's zone, rather than local times under the server's zone name
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    if (!zone) { return; }
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var t = new Date(el.getAttribute("datetime")), f = LOCAL_FORMATS[el.getAttribute("data-local")];
      if (!f || isNaN(t.getTime())) { return; }
      el.textContent = t.toLocaleString(LOCALE, f);
    });
    document.querySelectorAll("[data-local=zone]").forEach(function (el) { el.textContent = zone; });
  }
  function selection() {
    var boxes = document.querySelectorAll("input[type=checkbox][name=order]");
    var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    var out = document.getElementById("selected-count");
    if (out) { out.textContent = ticked ? ticked + " of " + boxes.length + " selected" : ""; }
  }
  document.addEventListener("change", function (evt) {
    var el = evt.target;
    if (el && el.hasAttribute && el.hasAttribute("data-select-all")) {
      document.querySelectorAll("input[type=checkbox][name=order]").forEach(function (b) { b.checked = el.checked; });
    }
    if (el && el.type === "checkbox") { selection(); }
  });
  document.addEventListener("toggle", function (evt) {
    var d = evt.target;
    if (d && d.classList && d.classList.contains("confirm") && d.open) {
      document.querySelectorAll("details.confirm[open]").forEach(function (o) { if (o !== d) { o.open = false; } });
    }
  }, true);
  function pendingTotals() {
    // the server's figures while every quantity is the saved one; the typed ones otherwise
    var inputs = document.querySelectorAll("[data-testid=line] input[data-testid=qty-input]");
    var changed = Array.prototype.some.call(inputs, function (i) { return i.value !== i.defaultValue; });
    var lines = 0, value = 0, priced = true;
    inputs.forEach(function (i) {
      var qty = Number(i.value), price = i.closest("[data-testid=line]").getAttribute("data-unit-price");
      if (!(qty > 0)) { return; }
      lines += 1;
      if (price === null || isNaN(Number(price))) { priced = false; } else { value += qty * Number(price); }
    });
    function show(el, text) {
      if (!el.hasAttribute("data-saved")) { el.setAttribute("data-saved", el.textContent); }
      el.textContent = changed ? text : el.getAttribute("data-saved");
    }
    document.querySelectorAll("[data-confirm-lines]").forEach(function (el) {
      show(el, lines + " line" + (lines === 1 ? "" : "s"));
    });
    document.querySelectorAll("[data-confirm-value-part]").forEach(function (el) {
      el.hidden = changed && !priced;        // a price missing: no value rather than the saved one
      var v = el.querySelector("[data-testid=confirm-value]");
      if (v) { show(v, value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })); }
    });
    document.querySelectorAll("[data-confirm-note]").forEach(function (el) {
      el.textContent = changed ? " with your changes" : "";
    });
  }
  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.getAttribute && evt.target.getAttribute("data-testid") === "qty-input") {
      pendingTotals();
    }
  });
  function filtersOnLaptop() {
    var box = document.getElementById("filters-box");
    if (box && window.matchMedia && window.matchMedia("(min-width: 48rem)").matches) { box.open = true; }
  }
  function focusOutcome() {
    // a boosted form swaps the whole body: the button pressed is gone and the focus would fall to the top of the
    // page, far from what happened. It goes to the error ("nothing was saved: ...") or else the notice ("Change
    // saved."), so that a screen reader reads it and a keyboard user goes on from there.
    var target = document.querySelector("main [role=alert][data-testid=error]") ||
                 document.querySelector("main [data-testid=notice]");
    if (!target) { return; }
    if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); }
    target.focus();
  }
  // A change saved after the session ended reaches the sign-in, not the order (or, from a page older than the last
  // sign-in, "Page out of date"): what was typed is kept in this tab
  // (sessionStorage: this tab only, gone with it) and put back once the same person is on that order again. Only
  // the lines changed, by item number, quantity and reason code; an hour at most; another person never gets it.
  var UNSAVED = "replenish:unsaved";
  function currentUser() {
    var who = document.querySelector("[data-testid=user-name][data-user]");
    return who ? who.getAttribute("data-user") : "";
  }
  function keepUnsaved(form) {
    var head = document.querySelector("[data-testid=order-head][data-order-id]"), lines = {}, any = false;
    if (!head) { return; }
    form.querySelectorAll("[data-testid=line]").forEach(function (line) {
      var qty = line.querySelector("input[name=qty]"), shown = line.querySelector("input[name=shown]");
      var reason = line.querySelector("select[name=reason]");
      if (qty && shown && qty.value !== shown.value) {
        lines[line.getAttribute("data-item-id")] = { qty: qty.value, reason: reason ? reason.value : "" };
        any = true;
      }
    });
    if (!any) { return; }
    try {
      sessionStorage.setItem(UNSAVED, JSON.stringify({ order: head.getAttribute("data-order-id"), user: currentUser(),
                                                        at: Date.now(), lines: lines }));
    } catch (e) { /* storage off: the page says the change was not saved */ }
  }
  function restoreUnsaved() {
    var kept = null, user = currentUser();
    try { kept = JSON.parse(sessionStorage.getItem(UNSAVED) || "null"); } catch (e) { kept = null; }
    if (!kept || !user) { return; }
    if (kept.user !== user || Date.now() - kept.at > 3600 * 1000) { sessionStorage.removeItem(UNSAVED); return; }
    var head = document.querySelector("[data-testid=order-head][data-order-id]");
    if (!head || head.getAttribute("data-order-id") !== kept.order || !document.getElementById("order-form")) {
      return;  // signed in, not yet back on that order
    }
    sessionStorage.removeItem(UNSAVED);
    var back = 0;
    Object.keys(kept.lines || {}).forEach(function (item) {
      var line = Array.prototype.find.call(document.querySelectorAll("[data-testid=line]"), function (l) {
        return l.getAttribute("data-item-id") === item;
      });
      var qty = line && line.querySelector("input[name=qty]"), reason = line && line.querySelector("select[name=reason]");
      if (!qty) { return; }
      qty.value = String(kept.lines[item].qty);
      if (reason) { reason.value = String(kept.lines[item].reason); }
      back += 1;
    });
    var notice = document.querySelector("main [data-testid=notice]"), main = document.querySelector("main");
    if (back && !notice && main) {
      notice = document.createElement("p");
      notice.className = "notice error";
      notice.setAttribute("role", "status");
      notice.setAttribute("data-testid", "notice");
      main.insertBefore(notice, main.firstChild);
    }
    if (back && notice) {
      notice.textContent = "Not saved yet: what you typed before is back in the fields below. Check it and save.";
    }
    pendingTotals();
  }
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var d = evt.detail || {}, elt = d.requestConfig && d.requestConfig.elt;
    var to = (d.pathInfo && d.pathInfo.responsePath) || "";
    // refused for an ended session (sent to the sign-in) or for a page older than the last sign-in (403)
    var stale = d.xhr && d.xhr.status === 403 && /data-error-code="csrf_failed"/.test(d.xhr.responseText || "");
    if (elt && elt.id === "order-form" && (to.indexOf("/login") === 0 || stale)) { keepUnsaved(elt); }
  });
  document.addEventListener("submit", function (evt) {
    if (evt.target && evt.target.id === "logout-form") {
      try { sessionStorage.removeItem(UNSAVED); } catch (e) { /* nothing kept */ }
    }
  }, true);
  function settle() { tick(); localTimes(); selection(); filtersOnLaptop(); pendingTotals(); restoreUnsaved(); }
  document.addEventListener("htmx:afterSettle", function (evt) {
    settle();
    if (evt.detail && evt.detail.boosted) { focusOutcome(); }
  });
  // Every request these pages make through htmx comes from a boosted link or form (hx-boost on <body>).
  // Anything else (an hx-get/hx-post/hx-trigger that got into the page) would carry the session's CSRF
  // header: refuse it before it is sent.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (!evt.detail || evt.detail.boosted !== true) { evt.preventDefault(); }
  });
  settle();
  setInterval(tick, 30000);
})();
