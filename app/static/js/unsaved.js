// Asks before leaving a page whose form holds unsaved input: forms marked data-unsaved-warning and
// every form with a textarea. Sending that form is not leaving it, so there is no warning then.
// Loaded as a file on every page (pages allow no inline script: CSP script-src 'self').
(function () {
  "use strict";

  function watched() {
    return Array.prototype.filter.call(document.forms, function (form) {
      return form.hasAttribute("data-unsaved-warning") || form.querySelector("textarea") !== null;
    });
  }

  // What a person can change in a form, as one string (hidden fields and buttons are not input).
  function snapshot(form) {
    var parts = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled) { return; }
      var type = (el.type || "").toLowerCase();
      if (type === "hidden" || type === "submit" || type === "button" || type === "reset" || type === "image") { return; }
      if (type === "checkbox" || type === "radio") {
        parts.push(el.name + "=" + el.value + ":" + el.checked);
      } else if (type === "file") {
        parts.push(el.name + "=" + Array.prototype.map.call(el.files || [], function (f) { return f.name; }).join("|"));
      } else if (el.tagName === "SELECT") {
        parts.push(el.name + "=" + Array.prototype.map.call(el.selectedOptions, function (o) { return o.value; }).join("|"));
      } else {
        parts.push(el.name + "=" + el.value);
      }
    });
    return parts.join("\n");
  }

  var forms = [];
  var initial = [];
  var sending = false;

  function start() {
    forms = watched();
    initial = forms.map(snapshot);
    forms.forEach(function (form) {
      form.addEventListener("submit", function () { sending = true; });
    });
  }

  function unsaved() {
    return forms.some(function (form, i) { return snapshot(form) !== initial[i]; });
  }

  window.addEventListener("beforeunload", function (event) {
    if (sending || !unsaved()) { return; }
    event.preventDefault();
    event.returnValue = "";  // older browsers need a value to ask
  });

  // Back from the page cache: the form is on screen again and may be changed again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { sending = false; }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
