// A campaign's analytics page: polls its JSON every 2 s while the tab is visible and redraws the
// doughnut, the breakdown (one rate bar per figure, so 3 failures beside 20,000 sent still show),
// the progress bar, the rates, top links and the recipient table.
(function () {
  "use strict";
  var root = document.getElementById("campaign-analytics");
  if (!root) { return; }
  var url = root.dataset.url;
  var interval = parseInt(root.dataset.interval, 10) || 2000;
  var timer = null, inFlight = false, page = 1, query = "", pages = 1;
  var statusChart = null;

  function el(id) { return document.getElementById(id); }
  function text(id, value) { var node = el(id); if (node) { node.textContent = value; } }
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString(); }
  function cell(value, cls) { var td = document.createElement("td"); td.textContent = value; if (cls) { td.className = cls; } return td; }
  // A rate that rounds to 0 % or 100 % while it is neither reads "< 0.1%" or "> 99.9%".
  function percent(count, value, of) {
    if (count && value < 0.1) { return "< 0.1%"; }
    if (of !== undefined && count < of && value > 99.9) { return "> 99.9%"; }
    return value + "%";
  }
  function duration(seconds) {
    if (!seconds) { return ""; }
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? fmt(h) + " h " + m + " min" : (m ? m + " min " + s + " s" : s + " s");
  }

  function chartOf(existing, canvasId, config) {
    if (!window.Chart) { return null; }
    if (existing) {
      existing.data.labels = config.data.labels;
      existing.data.datasets[0].data = config.data.datasets[0].data;
      existing.update("none");
      return existing;
    }
    return new window.Chart(el(canvasId), config);
  }

  function draw(d) {
    var c = d.counts, p = d.progress, r = d.rates;
    text("campaign-status", d.campaign.status_display);
    text("campaign-preparing", d.preparing ? d.preparing.text : "");
    text("campaign-reason", d.campaign.status_reason);
    text("count-sent", fmt(c.sent)); text("count-failed", fmt(c.failed)); text("count-pending", fmt(c.pending));
    text("count-possible-duplicates", fmt(c.possible_duplicates));
    text("rate-open", r.open_rate + "%"); text("rate-click", r.click_rate + "%");
    text("rate-machine", fmt(r.machine_opens) + " (" + r.machine_open_rate + "%)");
    text("count-unsubscribed", fmt(r.unsubscribed)); text("rate-unsubscribe", percent(r.unsubscribed, r.unsubscribe_rate));
    text("count-bounced-later", fmt(r.bounced_later)); text("count-complained", fmt(r.complained));
    var bar = el("progress-bar");
    bar.max = p.total || 1; bar.value = p.done;
    text("progress-text", fmt(p.done) + " of " + fmt(p.total) + " done (" + p.percent + "%)");
    // What keeps the send from moving (the campaign or its account paused, the server unreachable) replaces
    // the estimate: the server sends none then, as a countdown would never pass.
    var blocked = el("sending-blocked");
    blocked.hidden = !p.blocked;
    blocked.dataset.kind = p.blocked ? p.blocked.kind : "";
    blocked.textContent = p.blocked ? p.blocked.text : "";
    var eta = "";
    if (p.eta_seconds) {
      eta = "at least " + duration(p.eta_seconds) + " left at " + fmt(p.per_minute) + "/min";
      if (p.deferred) { eta += ", plus the retries of " + fmt(p.deferred) + " deferred"; }
      if (p.sharing_campaigns) { eta += "; the account also sends " + fmt(p.sharing_campaigns) + " other campaign(s), which slows this one"; }
    }
    text("progress-eta", eta);

    statusChart = chartOf(statusChart, "status-chart", {
      type: "doughnut",
      // The legend carries the numbers: a slice of 3 beside 20,000 is too thin to see.
      data: { labels: ["Sent " + fmt(c.sent), "Failed " + fmt(c.failed), "Pending " + fmt(c.pending)], datasets: [{
        data: [c.sent, c.failed, c.pending], backgroundColor: ["#66bb6a", "#ef5350", "#bdbdbd"] }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false }
    });
    drawBars(d.bars);

    var links = el("top-links");
    links.replaceChildren();
    if (!d.top_links.length) { var none = document.createElement("tr"); none.appendChild(cell("No clicks yet.")).colSpan = 2; links.appendChild(none); }
    d.top_links.forEach(function (l) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(l.url, "smtp-answer"));
      tr.appendChild(cell(fmt(l.clicks), "num"));
      links.appendChild(tr);
    });

    var rec = d.recipients;
    page = rec.page; pages = rec.pages;
    var rows = el("recipient-rows");
    rows.replaceChildren();
    if (!rec.rows.length) { var empty = document.createElement("tr"); empty.appendChild(cell("No recipients.")).colSpan = 7; rows.appendChild(empty); }
    rec.rows.forEach(function (row) {
      var tr = document.createElement("tr");
      if (row.unsubscribed) { tr.className = "unsubscribed"; }
      tr.appendChild(cell(row.to_email));
      tr.appendChild(cell(row.status_display));
      tr.appendChild(cell(row.sent_display));
      // A delivery report after the 250 (a bounce, a complaint) shows beside the server's answer.
      var answer = row.late_report ? row.smtp + " · later: " + row.late_report : row.smtp;
      var smtp = cell(answer, "smtp-answer" + (row.late_report ? " late-report" : "")); smtp.title = answer; tr.appendChild(smtp);
      tr.appendChild(cell(row.opened ? "yes" : (row.machine_open ? "machine only" : "")));
      tr.appendChild(cell(fmt(row.clicks), "num"));
      var unsub = cell(row.unsubscribed ? "unsubscribed " + row.unsubscribed_display : "", row.unsubscribed ? "unsub-mark" : "");
      tr.appendChild(unsub);
      rows.appendChild(tr);
    });
    text("page-info", "Page " + fmt(rec.page) + " of " + fmt(rec.pages) + " (" + fmt(rec.count) + " recipients)");
    el("page-prev").disabled = rec.page <= 1;
    el("page-next").disabled = rec.page >= rec.pages;
    // The server's time in the user's zone and the admin's format, as every other time on the page.
    text("dash-updated", d.updated_display);
    root.dataset.loaded = "1";
  }

  function drawBars(bars) {
    var body = el("breakdown-rows");
    body.replaceChildren();
    bars.forEach(function (b) {
      var tr = document.createElement("tr");
      tr.dataset.figure = b.key;
      tr.appendChild(cell(b.label));
      tr.appendChild(cell(fmt(b.count), "num"));
      tr.appendChild(cell(percent(b.count, b.percent, b.of), "num"));
      var track = document.createElement("div"), fill = document.createElement("div");
      track.className = "rate-bar"; track.title = fmt(b.count) + " " + b.of_label + " (" + fmt(b.of) + ")";
      fill.className = "rate-bar-fill bar-" + b.key + (b.count ? " nonzero" : "");
      fill.style.width = Math.min(100, b.percent) + "%";
      track.appendChild(fill);
      var td = cell("", "bar-cell"); td.appendChild(track); tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  function poll() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (document.hidden || inFlight) { return; }
    inFlight = true;
    var q = url + "?page=" + page + (query ? "&q=" + encodeURIComponent(query) : "");
    fetch(q, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(draw)
      .catch(function () { /* keep what is shown; try again */ })
      .then(function () { inFlight = false; schedule(); });
  }
  function schedule() { if (!timer && !document.hidden) { timer = window.setTimeout(poll, interval); } }

  el("recipient-search").addEventListener("submit", function (e) {
    e.preventDefault(); query = el("recipient-q").value.trim(); page = 1; poll();
  });
  el("page-prev").addEventListener("click", function () { if (page > 1) { page -= 1; poll(); } });
  el("page-next").addEventListener("click", function () { if (page < pages) { page += 1; poll(); } });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { if (timer) { window.clearTimeout(timer); timer = null; } }
    else if (!timer && !inFlight) { poll(); }
  });
  poll();
})();
