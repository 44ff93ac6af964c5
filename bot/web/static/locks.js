// The lock page refreshes itself: every 10 s it asks for the same URL (If-None-Match, so an unchanged list
// costs a 304) and swaps the results in place, without a page flash. Unlock asks for a second click.
// Loaded from /static with `defer`: the page's CSP allows no inline script.
(function () {
  "use strict";
  var REFRESH_MS = 10000;
  var ARMED_MS = 4000;
  var etag = null;
  var busy = false;

  function armedButton() {
    return document.querySelector("button.unlock.armed");
  }

  function setStatus(text, stale) {
    var el = document.getElementById("refreshed");
    var foot = document.querySelector(".foot");
    if (el) el.textContent = text;
    if (foot) foot.classList.toggle("stale", !!stale);
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  function refresh() {
    // Never swap the list under someone about to confirm an unlock, nor poll a tab nobody looks at.
    if (busy || document.hidden || armedButton()) return;
    busy = true;
    var headers = { "Accept": "text/html" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(window.location.pathname + window.location.search,
          { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 304) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        etag = response.headers.get("ETag");
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("results");
          var current = document.getElementById("results");
          if (fresh && current && !armedButton()) {
            current.replaceWith(document.adoptNode(fresh));
            document.title = doc.title || document.title;
          }
        }
        setStatus("Updated " + clock() + " · updates every 10 s", false);
      })
      .catch(function (err) {
        setStatus("Could not update at " + clock() + " (" + err.message + "): retrying", true);
      })
      .then(function () { busy = false; });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.unlock") : null;
    if (!button || button.classList.contains("armed")) return;  // the second click submits the form
    event.preventDefault();
    var label = button.textContent;
    button.classList.add("armed");
    button.textContent = "Confirm unlock";
    window.setTimeout(function () {
      button.classList.remove("armed");
      button.textContent = label;
    }, ARMED_MS);
  });

  if (document.getElementById("results")) {
    window.setInterval(refresh, REFRESH_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refresh();
    });
  }
}());
