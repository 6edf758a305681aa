// Progressive enhancements; every action works as a plain form without them.
"use strict";
(function () {
  // Copy buttons: data-copy names the element whose text to copy.
  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-copy]");
    if (!b) return;
    var el = document.querySelector(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      b.textContent = "Copied";
    });
  });
  // Live parts: data-refresh is a URL answering the part's HTML, fetched
  // every data-every ms while the page is visible.
  document.querySelectorAll("[data-refresh]").forEach(function (part) {
    var every = parseInt(part.getAttribute("data-every"), 10) || 5000;
    var url = part.getAttribute("data-refresh");
    setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== part.innerHTML) part.innerHTML = html;
        })
        .catch(function () {});
    }, every);
  });
  // Keep a conversation scrolled to its newest message.
  var m = document.getElementById("messages");
  if (m) m.scrollIntoView({ block: "end" });
})();
