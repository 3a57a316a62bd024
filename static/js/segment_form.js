// The segment form: each condition row shows only the operators that suit its field and only what it is
// compared with (a value, a status, a list, a campaign); and the count of matching contacts follows the
// form as it is edited, from the segment's count view (owner-scoped JSON; the form's own CSRF token).
(function () {
  "use strict";

  function start() {
    var box = document.getElementById("segment-count");
    var form = document.getElementById("segment_form");
    if (!box || !form) { return; }
    var rules = JSON.parse(box.dataset.rules);
    var figures = box.querySelector(".segment-count-figures");
    var timer = null;
    var asked = 0;

    function rowField(row, name) {
      return row.querySelector("[name$='-" + name + "']");
    }

    function show(element, visible) {
      if (element) { element.classList.toggle("segment-hidden", !visible); }
    }

    function arrange(row) {
      var field = rowField(row, "field");
      var operator = rowField(row, "operator");
      if (!field || !operator) { return; }
      var allowed = rules.operators[field.value] || [];
      Array.prototype.forEach.call(operator.options, function (option) {
        var suits = option.value === "" || allowed.indexOf(option.value) !== -1;
        option.hidden = !suits;
        option.disabled = !suits;
      });
      if (field.value && allowed.indexOf(operator.value) === -1) { operator.value = allowed[0] || ""; }
      var comparedWith = rules.compares_with[field.value] || "value";
      if (rules.without_value.indexOf(operator.value) !== -1) { comparedWith = ""; }
      ["value", "contact_status", "contact_list", "campaign"].forEach(function (name) {
        show(row.querySelector(".segment-compared-" + name), name === comparedWith);
      });
      show(rowField(row, "attribute"), field.value === "attribute");
      var value = rowField(row, "value");
      if (value) { value.placeholder = rules.placeholders[operator.value] || ""; }
    }

    function arrangeAll() {
      Array.prototype.forEach.call(form.querySelectorAll("tr.segment-condition"), arrange);
    }

    function render(data) {
      figures.textContent = "";
      if (data.errors) {
        figures.appendChild(document.createTextNode("Not counted yet: "));
        var list = document.createElement("ul");
        list.className = "errorlist";
        data.errors.forEach(function (message) {
          var item = document.createElement("li");
          item.textContent = message;
          list.appendChild(item);
        });
        figures.appendChild(list);
        return;
      }
      var strong = document.createElement("strong");
      strong.id = "segment-matching";
      strong.textContent = data.matching.toLocaleString();
      figures.appendChild(strong);
      figures.appendChild(document.createTextNode(
        (data.matching === 1 ? " contact matches" : " contacts match") + ", " +
        data.subscribed.toLocaleString() + " of them subscribed. "));
    }

    function count() {
      var mine = ++asked;
      box.dataset.state = "busy";
      fetch(box.dataset.url, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "Accept": "application/json" },
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (mine !== asked) { return; }  // an older answer arriving late
          render(data);
          box.dataset.state = "done";
        })
        .catch(function () {
          if (mine !== asked) { return; }
          figures.textContent = "The count is not available just now.";
          box.dataset.state = "done";
        });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(count, 400);
    }

    form.addEventListener("change", function (event) {
      var row = event.target.closest && event.target.closest("tr.segment-condition");
      if (row) { arrange(row); }
      later();
    });
    form.addEventListener("input", later);
    document.addEventListener("formset:added", function (event) {
      arrange(event.target);
      later();
    });
    document.addEventListener("formset:removed", later);
    arrangeAll();
    count();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
