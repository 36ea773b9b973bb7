// Draws a topic's sends per minute with uPlot, from the JSON the page carries.
(function () {
  "use strict";
  var target = document.getElementById("timeline");
  var source = document.getElementById("timeline-data");
  if (!target || !source) return;
  var points = JSON.parse(source.textContent);
  var data = [
    points.map(function (point) { return point[0]; }),
    points.map(function (point) { return point[1]; })
  ];
  function width() { return Math.max(target.clientWidth, 300); }
  var chart = new uPlot({
    width: width(),
    height: 260,
    legend: { show: false },
    scales: {
      // A minute either side, so that one minute of sending is a bar, not the whole width.
      x: { time: true, auto: false, range: [data[0][0] - 60, data[0][data[0].length - 1] + 60] },
      y: { range: function (u, min, max) { return [0, Math.max(max, 1) * 1.15]; } }
    },
    axes: [{ stroke: "#6b7280" }, { stroke: "#6b7280", size: 60 }],
    series: [
      {},
      {
        label: target.dataset.label,
        stroke: "#2563eb",
        width: 2,
        fill: "rgba(37, 99, 235, 0.35)",
        paths: uPlot.paths.bars({ size: [0.8, 48] }),
        points: { show: false }
      }
    ]
  }, data, target);
  window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 260 }); });
})();
