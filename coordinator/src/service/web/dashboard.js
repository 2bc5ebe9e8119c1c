// rota's dashboard script: keeps an open page current without reloading it.
//
// One EventSource on /events (filtered to the page's jobset or run) patches the cells of the
// rows it names (their `data-f` children) and, a moment later, refreshes the page's
// `data-refresh` sections (counts, attempts) from a fresh copy of the page, at most every
// 5 s on a busy page (rows are live; counts may lag that much), and once each time the stream
// opens. A run page whose
// attempt is running also follows its log over /runs/N/tail, appending server-rendered
// (escaped) chunks at the offsets it holds. Text is set with textContent; the only HTML
// inserted is what the server rendered and escaped.
(function () {
  "use strict";

  var live = document.getElementById("live-state");
  var table = document.getElementById("runs");
  var runRoot = document.querySelector("div[data-run]");
  var tail = document.getElementById("tail");
  if (!live) return; // the login page

  function status(text, cls) {
    live.textContent = text;
    live.className = "live-state " + cls;
  }

  // Section refresh: one timer, the earliest deadline wins.
  var timer = null;
  var due = 0;
  function refreshSoon(ms) {
    var at = Date.now() + ms;
    if (timer !== null) {
      if (at >= due) return;
      clearTimeout(timer);
    }
    due = at;
    timer = setTimeout(refresh, ms);
  }
  function refresh() {
    timer = null;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh][id]").forEach(function (section) {
          var fresh = doc.getElementById(section.id);
          if (fresh) section.replaceWith(document.adoptNode(fresh));
        });
        if (table) {
          var freshRows = doc.querySelector("#runs tbody");
          if (freshRows) table.querySelector("tbody").replaceWith(document.adoptNode(freshRows));
        }
      })
      .catch(function () {});
  }

  function patch(cells) {
    var rows = document.querySelectorAll('[data-run="' + cells.number + '"]');
    if (rows.length === 0) {
      // A run this page does not show yet: new in this jobset, on its last page.
      if (table && !table.dataset.more) refreshSoon(300);
      else if (!table && !runRoot) refreshSoon(1000);
      return;
    }
    rows.forEach(function (row) {
      row.querySelectorAll("[data-f]").forEach(function (el) {
        var key = el.dataset.f;
        if (key === "state") {
          el.textContent = cells.state;
          el.className = "badge s-" + cells.state;
        } else if (Object.prototype.hasOwnProperty.call(cells, key)) {
          el.textContent = cells[key];
        }
      });
    });
    refreshSoon(cells.finished && runRoot ? 200 : 5000);
  }

  var query = "";
  if (table) query = "?jobset=" + encodeURIComponent(table.dataset.jobset);
  else if (runRoot) query = "?run=" + encodeURIComponent(runRoot.dataset.run);
  var events = new EventSource("/events" + query);
  // Changes made between this page's render and the stream's (re)opening never reach it
  // as events (a cancel whose redirect rendered the page just before the run ended, or
  // anything while the stream was down): each open takes one fresh copy of the sections.
  events.onopen = function () {
    status("live", "on");
    refreshSoon(0);
  };
  events.onerror = function () { status("reconnecting", "off"); };
  // Every change of one engine batch together, oldest first.
  events.addEventListener("runs", function (e) { JSON.parse(e.data).forEach(patch); });
  events.addEventListener("reload", function () { refreshSoon(0); });
  events.addEventListener("bye", function () { events.close(); status("coordinator stopped", "off"); });

  function follow() {
    var panes = {};
    var url = tail.dataset.src;
    tail.querySelectorAll("pre.log").forEach(function (pre) {
      panes[pre.dataset.stream] = pre;
      url += "&" + pre.dataset.stream + "_offset=" + pre.dataset.offset;
    });
    var source = new EventSource(url);
    source.addEventListener("log", function (e) {
      var chunk = JSON.parse(e.data);
      var pre = panes[chunk.stream];
      if (!pre || chunk.next <= Number(pre.dataset.offset)) return;
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.insertAdjacentHTML("beforeend", chunk.html);
      pre.dataset.offset = String(chunk.next);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", function () {
      source.close();
      tail.removeAttribute("data-live");
      refreshSoon(100);
    });
    // Reopened from the offsets held, so nothing is shown twice.
    source.onerror = function () {
      source.close();
      setTimeout(follow, 2000);
    };
  }
  if (tail && tail.dataset.live) follow();
})();
