// The link check fragment (templates/admin/campaigns/campaign/_link_checks.html): its form starts a run
// without leaving the page, and the fragment reloads itself while the run is under way (data-poll).
(function () {
  "use strict";
  var timer = null;

  function replace(html) {
    var current = document.getElementById("link-checks");
    var holder = document.createElement("div");
    holder.innerHTML = html.trim();
    var fresh = holder.querySelector("#link-checks");
    if (current && fresh) { current.replaceWith(fresh); }
    schedule();
  }

  function load(url, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = { "X-Requested-With": "fetch" };
    return fetch(url, options).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.text();
    }).then(replace);
  }

  function schedule() {
    window.clearTimeout(timer);
    var section = document.getElementById("link-checks");
    if (!section || !section.dataset.poll) { return; }
    timer = window.setTimeout(function () {
      load(section.dataset.statusUrl).catch(function () { timer = window.setTimeout(schedule, 5000); });
    }, parseInt(section.dataset.poll, 10) || 1500);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("link-check-start")) { return; }
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    load(form.action, { method: "POST", body: new FormData(form) }).catch(function () { form.submit(); });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", schedule);
  } else {
    schedule();
  }
}());
