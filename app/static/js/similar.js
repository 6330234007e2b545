// Shows published cases similar to the question being typed (title and body), so staff can find
// an answer before asking. Loaded as a file: pages have no inline script (CSP).
(function () {
  "use strict";
  var box = document.getElementById("similar");
  if (!box) { return; }
  var form = box.closest("form") || document;
  var title = form.querySelector("[name=title]");
  var body = form.querySelector("[name=body]");
  var list = box.querySelector("ul");
  var timer = null;
  var lastQuery = "";

  function render(results) {
    list.textContent = "";
    results.forEach(function (item) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = item.url;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = item.title;
      li.appendChild(a);
      var category = document.createElement("span");
      category.className = "muted";
      category.textContent = "（" + item.category + "）";
      li.appendChild(category);
      list.appendChild(li);
    });
    box.hidden = results.length === 0;
  }

  function lookUp() {
    var query = (title ? title.value : "") + "\n" + (body ? body.value : "");
    if (query.trim().length < 2) { lastQuery = query; render([]); return; }
    if (query === lastQuery) { return; }
    lastQuery = query;
    // POST with the form's CSRF token: drafts hold host names and log lines, which must not end up
    // in query strings (access logs, proxies, browser history).
    var token = form.querySelector("[name=csrf_token]");
    var params = new URLSearchParams({
      title: title ? title.value : "",
      body: body ? body.value.slice(0, 2000) : "",
      csrf_token: token ? token.value : ""
    });
    fetch(box.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: params.toString()
    })
      .then(function (response) { return response.ok ? response.json() : { results: [] }; })
      .then(function (data) { render(data.results || []); })
      .catch(function () { /* suggestions are optional */ });
  }

  function schedule() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(lookUp, 400);
  }

  [title, body].forEach(function (field) { if (field) { field.addEventListener("input", schedule); } });
  lookUp();
}());
