// rota's dashboard script: keeps an open page current without reloading it.
//
// One EventSource on /events (filtered to the page's jobset or run) patches the cells of the
// rows it names (their `data-f` children) and, a moment later, refreshes the page's
// `data-refresh` sections (counts, attempts) from a fresh copy of the page, at most every
// 5 s on a busy page (rows are live; counts may lag that much), and when the stream opens
// after a change the page missed. A run page whose
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
        // Only what changed is replaced: a button the user is about to press stays the
        // same element when its section is unchanged.
        function swap(old, fresh) {
          if (fresh && fresh.outerHTML !== old.outerHTML) old.replaceWith(document.adoptNode(fresh));
        }
        document.querySelectorAll("[data-refresh][id]").forEach(function (section) {
          swap(section, doc.getElementById(section.id));
        });
        if (table) swap(table.querySelector("tbody"), doc.querySelector("#runs tbody"));
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
  // Changes made between this page's render and the stream's (re)opening never reach it as
  // events (a cancel whose redirect rendered the page just before the run ended, anything
  // while the stream was down or the page was in the back/forward cache). The page holds the
  // engine's change count from its render, the stream says the count at opening: if they
  // differ, one fresh copy of the sections.
  var seen = live.dataset.seq;
  var events = null;
  function watch() {
    events = new EventSource("/events" + query);
    events.onopen = function () { status("live", "on"); };
    events.onerror = function () { status("reconnecting", "off"); };
    events.addEventListener("hello", function (e) {
      if (e.data !== seen) refreshSoon(0);
      seen = e.data;
    });
    // Every change of one engine batch together, oldest first.
    events.addEventListener("runs", function (e) { JSON.parse(e.data).forEach(patch); });
    events.addEventListener("reload", function () { refreshSoon(0); });
    events.addEventListener("bye", function () {
      events.close();
      events = null;
      status("coordinator stopped", "off");
    });
  }

  var source = null;
  var retry = null;
  function follow() {
    var panes = {};
    var url = tail.dataset.src;
    tail.querySelectorAll("pre.log").forEach(function (pre) {
      panes[pre.dataset.stream] = pre;
      url += "&" + pre.dataset.stream + "_offset=" + pre.dataset.offset;
    });
    source = new EventSource(url);
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
      stopFollowing();
      tail.removeAttribute("data-live");
      refreshSoon(100);
    });
    // Reopened from the offsets held, so nothing is shown twice.
    source.onerror = function () {
      stopFollowing();
      retry = setTimeout(follow, 2000);
    };
  }
  function stopFollowing() {
    if (source) source.close();
    source = null;
    clearTimeout(retry);
  }

  watch();
  if (tail && tail.dataset.live) follow();
  // A page the browser keeps in its back/forward cache must not keep its streams open: a
  // browser allows six HTTP/1.1 connections to one host, and cached pages holding theirs
  // stall every later page of the dashboard until one times out (a minute in Chromium).
  window.addEventListener("pagehide", function () {
    if (events) events.close();
    events = null;
    stopFollowing();
  });
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    watch();
    if (tail && tail.dataset.live) follow();
  });
})();
