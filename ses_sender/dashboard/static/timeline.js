// Draws a timeline with uPlot from the JSON the page carries: per bucket its start (epoch
// seconds), then sent (bars), delivered, opens by people and bounced (lines).
(function () {
  "use strict";
  var target = document.getElementById("timeline");
  var source = document.getElementById("timeline-data");
  if (!target || !source) return;
  var rows = JSON.parse(source.textContent);
  var labels = JSON.parse(target.dataset.labels);
  var colours = ["#2563eb", "#15803d", "#9333ea", "#b91c1c"];
  var WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7];
  var data = [rows.map(function (row) { return row[0]; })];
  labels.forEach(function (label, index) {
    data.push(rows.map(function (row) { return row[index + 1]; }));
  });
  var step = rows.length > 1 ? rows[1][0] - rows[0][0] : 60;
  var series = [{}].concat(labels.map(function (label, index) {
    var line = { label: label, stroke: colours[index], width: 2, points: { show: false } };
    if (index === 0) {
      line.fill = "rgba(37, 99, 235, 0.3)";
      line.paths = uPlot.paths.bars({ size: [0.8, 40] });
    }
    return line;
  }));
  function width() { return Math.max(target.clientWidth, 300); }
  var chart = new uPlot({
    width: width(),
    height: 260,
    scales: {
      // Half a bucket either side, so that the first and last bars are whole.
      x: { time: true, auto: false, range: [data[0][0] - step / 2, data[0][data[0].length - 1] + step / 2] },
      y: { range: function (u, min, max) { return [0, Math.max(max, 1) * 1.15]; } }
    },
    // Counts are whole: ticks at whole steps only.
    axes: [{ stroke: "#6b7280" }, { stroke: "#6b7280", size: 56, incrs: WHOLE_STEPS }],
    series: series
  }, data, target);
  window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 260 }); });
})();
