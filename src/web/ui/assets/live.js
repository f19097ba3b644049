// The run page's live parts: the timeline and the steps are fetched again as the run's
// events arrive (Server-Sent Events); the controls are fetched again only when what they
// offer changes, so that a reason being typed is not lost. Without EventSource, or when the
// stream breaks, the page asks every two seconds instead.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var run = live.getAttribute("data-run");
  var base = "/runs/" + encodeURIComponent(run);
  var controls = document.getElementById("controls");
  var state = document.getElementById("live-state");
  var busy = false, again = false, timer = null, source = null;

  function say(text) { if (state) state.textContent = text; }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(base + "/timeline", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.firstElementChild;
        if (!fresh) return;
        var key = fresh.getAttribute("data-controls");
        live.replaceWith(fresh);
        live = fresh;
        if (controls && key !== controls.getAttribute("data-controls")) {
          return fetch(base + "/controls", { credentials: "same-origin" })
            .then(function (r) { return r.ok ? r.text() : null; })
            .then(function (html) {
              if (html === null) return;
              var box = document.createElement("div");
              box.innerHTML = html;
              var next = box.firstElementChild;
              if (next) { controls.replaceWith(next); controls = next; }
            });
        }
      })
      .catch(function () { say("Could not reach the server; trying again."); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
        if (live.getAttribute("data-over") === "true") stop();
      });
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (timer) { clearInterval(timer); timer = null; }
    say("The run is over.");
  }

  function poll() {
    if (timer) return;
    say("Updating every two seconds.");
    timer = setInterval(refresh, 2000);
  }

  if (live.getAttribute("data-over") === "true") return;
  if (window.EventSource) {
    source = new EventSource("/api/runs/" + encodeURIComponent(run) + "/events");
    source.onopen = function () { say("Live: updated as the run's events arrive."); };
    source.onmessage = function () { refresh(); };
    source.onerror = function () {
      if (source) { source.close(); source = null; }
      poll();
    };
  } else {
    poll();
  }
  refresh();
})();
