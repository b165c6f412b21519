// Live updates, and only that: every page works without this script.
// A list marked data-live is fetched again every few seconds and its rows
// replaced in place while the tab is visible. Forms and links never
// depend on it.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var live = document.querySelectorAll("table[data-live][id]");
  if (!live.length || !window.fetch || !window.DOMParser) return;
  function refresh() {
    if (document.visibilityState !== "visible") return;
    fetch(window.location.href, { credentials: "same-origin", redirect: "error" })
      .then(function (resp) { return resp.ok ? resp.text() : Promise.reject(resp.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (table) {
          var next = fresh.getElementById(table.id);
          var body = table.tBodies[0];
          if (next && next.tBodies[0] && body) body.replaceWith(document.importNode(next.tBodies[0], true));
        });
      })
      .catch(function () { /* signed out or offline: the page stays as it was */ });
  }
  window.setInterval(refresh, PERIOD_MS);
})();
