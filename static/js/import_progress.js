// Polls an import job's status (a JSON endpoint scoped to its owner) and moves the progress bar;
// when the job leaves the statuses the page waits through (data-waiting: the file being read, or
// imported), reloads the page for the preview or the final report.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.dataset.finished === "1") { return; }
  var bar = document.getElementById("progress-bar");
  var text = document.getElementById("progress-text");
  var status = document.getElementById("job-status");
  var url = box.dataset.statusUrl;
  var waiting = (box.dataset.waiting || "queued running").split(" ");
  var delay = 1000;

  function show(job) {
    if (bar) {
      bar.max = job.total_rows || 1;
      bar.value = job.processed_rows;
    }
    if (text) {
      text.textContent = job.processed_rows + " of " + job.total_rows + " rows (" + job.percent + "%)";
    }
    status.textContent = job.status_display;
    Object.keys(job.counts).forEach(function (key) {
      var cell = document.getElementById("count-" + key);
      if (cell) { cell.textContent = job.counts[key]; }
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (waiting.indexOf(job.status) < 0) { window.location.reload(); return; }
        delay = 1000;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 15000);  // the server is busy or gone: back off, keep trying
        window.setTimeout(poll, delay);
      });
  }
  window.setTimeout(poll, 500);
})();
