/* Draws every chart on the page: each <script type="application/json" data-chart="ID"> holds a
   Plotly figure ({data, layout}) built on the server; it is drawn into the element with id ID.
   No inline code anywhere (CSP); Plotly itself comes from our static files (vendor/plotly.min.js).
   Runs on load and again after htmx swaps in new content. */
(function () {
  "use strict";

  var CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function draw(root) {
    if (typeof window.Plotly === "undefined") {
      return;
    }
    var islands = (root || document).querySelectorAll('script[type="application/json"][data-chart]');
    Array.prototype.forEach.call(islands, function (island) {
      var target = document.getElementById(island.getAttribute("data-chart"));
      if (!target) {
        return;
      }
      var figure;
      try {
        figure = JSON.parse(island.textContent);
      } catch (error) {
        target.textContent = "";
        return;
      }
      window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, CONFIG);
      target.setAttribute("data-chart-drawn", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    draw(event.target);
  });
})();
