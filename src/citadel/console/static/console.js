// The rebuild page's live progress: polls the rebuild's JSON until it is done, without reloading the page.
"use strict";

(function () {
  const box = document.getElementById("rebuild");
  if (!box) {
    return;
  }
  const url = box.dataset.progressUrl;
  const bar = document.getElementById("rebuild-bar");
  const show = (id, text) => {
    document.getElementById(id).textContent = text;
  };

  async function poll() {
    let job;
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      job = await answer.json();
      if (!answer.ok) {
        show("rebuild-state", job.detail || "refused");
        return;
      }
    } catch (error) {
      show("rebuild-state", "unreachable, retrying");
      window.setTimeout(poll, 1000);
      return;
    }
    bar.value = job.percent;
    bar.textContent = job.percent + "%";
    show("rebuild-percent", job.percent + "%");
    show("rebuild-reached", String(job.reached));
    show("rebuild-target", String(job.target));
    show("rebuild-state", job.state);
    if (job.error) {
      const error = document.getElementById("rebuild-error");
      error.textContent = job.error;
      error.hidden = false;
    }
    if (job.state === "running") {
      window.setTimeout(poll, 250);
    }
  }

  poll();
})();
