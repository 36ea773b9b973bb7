// Keeps each topic's progress bar current: asks for the shown topics' counts every few
// seconds, and stops asking once none of them has anything left to send.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var blocks = Array.prototype.slice.call(document.querySelectorAll(".progress[data-topic]"));
  if (!blocks.length) return;

  function show(block, topic) {
    block.querySelector("progress").max = Math.max(topic.total, 1);
    block.querySelector("progress").value = topic.done;
    Object.keys(topic).forEach(function (name) {
      var field = block.querySelector('[data-count="' + name + '"]');
      if (field) field.textContent = Number(topic[name]).toLocaleString();
    });
  }

  function poll() {
    var query = blocks.map(function (block) {
      return "topic=" + encodeURIComponent(block.dataset.topic);
    }).join("&");
    fetch("/dashboard/progress?" + query, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        var busy = false;
        data.topics.forEach(function (topic, index) {
          show(blocks[index], topic);
          busy = busy || topic.queued > 0;
        });
        if (busy) window.setTimeout(poll, POLL_MS);
      })
      .catch(function () { window.setTimeout(poll, POLL_MS * 5); });
  }

  window.setTimeout(poll, POLL_MS);
})();
