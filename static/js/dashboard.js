// The dashboard (admin index): polls its JSON every few seconds while the tab is visible and
// redraws cards, the 7-day chart, top campaigns, the activity log and the sending indicator.
// No inline script: URLs come from data- attributes, so a strict Content-Security-Policy holds.
(function () {
  "use strict";
  var root = document.getElementById("live-dashboard");
  if (!root) { return; }
  var url = root.dataset.url;
  var interval = parseInt(root.dataset.interval, 10) || 5000;
  var analyticsUrl = root.dataset.analyticsUrl;
  var timer = null;
  var chart = null;
  var inFlight = false;

  function el(id) { return document.getElementById(id); }
  function text(id, value) { var node = el(id); if (node) { node.textContent = value; } }
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString(); }
  function cell(tag, value, cls) {
    var node = document.createElement(tag);
    node.textContent = value;
    if (cls) { node.className = cls; }
    return node;
  }
  // The title carries the whole label where the page cuts a long one with an ellipsis.
  function link(href, label) { var a = document.createElement("a"); a.href = href; a.textContent = label; a.title = label; return a; }
  function campaignUrl(id) { return analyticsUrl.replace("/0/", "/" + id + "/"); }

  function drawCards(c) {
    text("card-sent", fmt(c.sent.total)); text("card-sent-today", fmt(c.sent.today));
    text("card-failed", fmt(c.failed.total)); text("card-failed-today", fmt(c.failed.today));
    text("card-bounced-later", fmt(c.failed.bounced_later)); text("card-complained", fmt(c.failed.complained));
    text("card-pending", fmt(c.pending.total));
    text("card-pending-queued", fmt(c.pending.queued)); text("card-pending-deferred", fmt(c.pending.deferred));
    text("card-opened", fmt(c.opened.total)); text("card-opened-today", fmt(c.opened.today));
    text("card-open-rate", c.open_rate + "%"); text("card-open-rate-today", c.open_rate_today + "%");
  }

  function drawTop(rows) {
    var body = el("top-campaigns");
    body.replaceChildren();
    if (!rows.length) { var tr = document.createElement("tr"); tr.appendChild(cell("td", "Nothing sent yet.")).colSpan = 4; body.appendChild(tr); return; }
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      var name = document.createElement("td");
      name.className = "campaign-name";
      name.appendChild(link(campaignUrl(r.id), r.name));
      tr.appendChild(name);
      tr.appendChild(cell("td", fmt(r.sent), "num"));
      tr.appendChild(cell("td", r.open_rate + "%", "num"));
      tr.appendChild(cell("td", fmt(r.machine_opens), "num"));
      body.appendChild(tr);
    });
  }

  function drawTimeline(days) {
    var labels = days.map(function (d) { return d.label; });
    var sent = days.map(function (d) { return d.sent; });
    var opened = days.map(function (d) { return d.opened; });
    if (window.Chart) {
      if (!chart) {
        chart = new window.Chart(el("timeline-chart"), {
          type: "bar",
          data: { labels: labels, datasets: [
            { label: "Sent", data: sent, backgroundColor: "#42a5f5" },
            { label: "Opened", data: opened, backgroundColor: "#66bb6a" }
          ] },
          options: { animation: false, responsive: true, maintainAspectRatio: false,
                     scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
        });
      } else {
        chart.data.labels = labels;
        chart.data.datasets[0].data = sent;
        chart.data.datasets[1].data = opened;
        chart.update("none");
      }
    }
    var body = el("timeline-campaigns");
    body.replaceChildren();
    days.slice().reverse().forEach(function (d) {
      if (!d.campaigns.length) { return; }
      var tr = document.createElement("tr");
      tr.appendChild(cell("th", d.label));
      var td = document.createElement("td");
      d.campaigns.forEach(function (c, i) {
        if (i) { td.appendChild(document.createTextNode(", ")); }
        td.appendChild(link(campaignUrl(c.id), c.name));
        td.appendChild(document.createTextNode(" " + fmt(c.sent) + " sent, " + c.open_rate + "% opened"));
      });
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  function drawActivity(items) {
    var list = el("activity-log");
    list.replaceChildren();
    if (!items.length) { list.appendChild(cell("li", "No activity yet.")); return; }
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.appendChild(cell("span", item.at_display, "when"));
      li.appendChild(cell("span", item.kind, "kind kind-" + item.kind));
      li.appendChild(document.createTextNode(item.text));
      list.appendChild(li);
    });
  }

  function drawSending(sending) {
    var box = el("sending-indicator");
    if (sending.length) {
      box.className = "sending-indicator active";
      text("sending-text", "Sending… " + sending.map(function (c) { return c.name; }).join(", "));
    } else {
      box.className = "sending-indicator idle";
      text("sending-text", "Idle");
    }
  }

  function drawPaused(accounts) {
    var banner = el("paused-banner");
    banner.replaceChildren();
    accounts.forEach(function (a) {
      var p = document.createElement("p");
      if (a.kind === "unreachable") {
        p.textContent = "SMTP account “" + a.name + "” cannot reach the server since " + a.since_display + ": " +
          (a.reason || "no error recorded") + "; next try at " + a.next_try_display +
          "; no email is lost or spent meanwhile.";
      } else {
        p.textContent = "SMTP account “" + a.name + "” is paused until " + a.until_display + ": " +
          (a.reason || "no reason given") + ". Its campaigns resume by themselves then.";
      }
      banner.appendChild(p);
    });
    banner.hidden = accounts.length === 0;
  }

  function drawSystem(s) {
    if (!s || !el("system-health")) { return; }
    text("health-tick", s.last_tick_display || "never");
    text("health-duration", s.last_tick_duration_ms === null ? "–" : s.last_tick_duration_ms + " ms");
    text("health-claimed", fmt(s.last_tick_claimed));
    text("health-queue", s.queue_length === null ? "unknown" : fmt(s.queue_length));
    text("health-errors", s.send_errors ? fmt(s.send_errors) + " (see Activity)" : "none");
    el("health-errors").classList.toggle("dash-alert", s.send_errors > 0);
    var body = el("health-statuses");
    body.replaceChildren();
    Object.keys(s.emails_per_status).forEach(function (k) {
      var tr = document.createElement("tr");
      tr.appendChild(cell("td", k));
      tr.appendChild(cell("td", fmt(s.emails_per_status[k]), "num"));
      body.appendChild(tr);
    });
  }

  function draw(data) {
    drawCards(data.cards);
    drawTop(data.top_campaigns);
    drawTimeline(data.timeline);
    drawActivity(data.activity);
    drawSending(data.sending);
    drawPaused(data.paused_accounts);
    drawSystem(data.system);
    // The server's time in the user's zone and the admin's format, as every other time on the page.
    text("dash-updated", data.generated_display);
    root.dataset.loaded = "1";
  }

  function poll() {
    timer = null;
    if (document.hidden || inFlight) { return; }
    inFlight = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(draw)
      .catch(function () { /* keep the last figures; try again next time */ })
      .then(function () { inFlight = false; schedule(); });
  }
  function schedule() { if (!timer && !document.hidden) { timer = window.setTimeout(poll, interval); } }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { if (timer) { window.clearTimeout(timer); timer = null; } }
    else if (!timer && !inFlight) { poll(); }
  });
  poll();
})();
