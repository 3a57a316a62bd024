// Fields marked data-submit-on-change submit their form when changed (instead of an inline
// onchange handler, which the Content-Security-Policy refuses).
document.addEventListener("change", function (event) {
  "use strict";
  var field = event.target;
  if (field && field.form && field.hasAttribute("data-submit-on-change")) { field.form.submit(); }
});
