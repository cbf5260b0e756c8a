// Live updates for the simulated phone: every 2 s it asks messages.json whether the
// thread changed and, if so, fetches the page again and swaps in only its thread, so a
// message being typed is kept. The swapped-in markup is the server's escaped template
// output; nothing from a text is ever inserted as HTML here. Without JavaScript the page
// refreshes itself instead.
(function () {
  "use strict";
  var thread = document.getElementById("thread");
  if (!thread || !window.fetch || !window.DOMParser) {
    return;
  }
  var feed = thread.getAttribute("data-feed");
  var page = thread.getAttribute("data-page");
  var version = thread.getAttribute("data-version");

  function latest() {
    var last = document.getElementById("latest");
    if (last && last.scrollIntoView) {
      last.scrollIntoView({ block: "end" });
    }
  }

  function refresh() {
    return fetch(page, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("thread");
        if (!fresh) {
          return;
        }
        var nodes = [];
        fresh.childNodes.forEach(function (node) { nodes.push(document.importNode(node, true)); });
        thread.replaceChildren.apply(thread, nodes);
        version = fresh.getAttribute("data-version");
        thread.setAttribute("data-version", version);
        latest();
      });
  }

  function poll() {
    fetch(feed, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (data) {
        if (data && String(data.version) !== version) {
          return refresh();
        }
      })
      .catch(function () { /* the bridge restarted or the network blinked: try again */ })
      .then(function () { window.setTimeout(poll, 2000); });
  }

  window.setTimeout(poll, 2000);
})();
