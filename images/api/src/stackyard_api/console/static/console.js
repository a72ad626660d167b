// stackyard console: live regions and confirmations. No inline script anywhere (strict CSP).
//
// Live: an element with an id and data-live="<seconds>" is refreshed by fetching the current
// URL (header X-Console-Live: 1), parsing it and swapping that element's innerHTML, while the
// tab is visible and no form inside the element has focus.
// Confirm: a form with data-confirm="…" asks before it submits.
(function () {
  "use strict";

  function liveRegions() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-live][id]"), function (el) {
      return parseFloat(el.getAttribute("data-live")) > 0;
    });
  }

  function busy(el) {
    var active = document.activeElement;
    return active && active !== document.body && el.contains(active) && active.closest("form") !== null;
  }

  function refresh(ids) {
    if (document.hidden || ids.length === 0) return Promise.resolve();
    return fetch(location.href, {
      headers: { "X-Console-Live": "1" },
      credentials: "same-origin",
      redirect: "manual",
      cache: "no-store",
    })
      .then(function (answer) {
        if (answer.type === "opaqueredirect" || answer.status === 303) {
          // The session ended: show the login page instead of stale data.
          location.reload();
          return null;
        }
        if (!answer.ok) return null;
        return answer.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var el = document.getElementById(id);
          var next = fresh.getElementById(id);
          if (el && next && !busy(el) && el.innerHTML !== next.innerHTML) {
            el.innerHTML = next.innerHTML;
            el.setAttribute("data-refreshed", new Date().toISOString());
          }
        });
      })
      .catch(function () {
        /* offline for a moment: try again at the next tick */
      });
  }

  function startLive() {
    var regions = liveRegions();
    if (regions.length === 0) return;
    // One fetch per period for every region sharing it.
    var byPeriod = {};
    regions.forEach(function (el) {
      var seconds = Math.max(1, parseFloat(el.getAttribute("data-live")));
      (byPeriod[seconds] = byPeriod[seconds] || []).push(el.id);
    });
    Object.keys(byPeriod).forEach(function (seconds) {
      var ids = byPeriod[seconds];
      var running = false;
      setInterval(function () {
        if (running) return;
        running = true;
        refresh(ids).then(function () {
          running = false;
        });
      }, parseFloat(seconds) * 1000);
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refresh(regions.map(function (el) { return el.id; }));
    });
  }

  function confirmForms() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
        return;
      }
      var button = form.querySelector("button[type=submit], button:not([type])");
      if (button) {
        // One submission per click; re-enabled if the page stays (e.g. a download).
        setTimeout(function () { button.disabled = true; }, 0);
        setTimeout(function () { button.disabled = false; }, 5000);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    startLive();
  });
})();
