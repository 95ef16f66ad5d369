// A running study's page: poll its status block every data-refresh seconds; reload the results (table,
// plots, trials) when the block says they changed, at most every three polls, and once more at the end.
// Polling stops when the study has ended. Without scripts the page is complete; a reload updates it.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const results = document.getElementById("results");
  if (!live || !results) return;
  const every = Math.max(1, parseFloat(live.dataset.refresh || "3")) * 1000;
  const state = () => live.querySelector("[data-version]");
  let shown = state() ? state().dataset.version : "";
  let resultsAt = Date.now();

  async function fetchHtml(url) {
    const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (answer.redirected || !answer.ok) throw new Error(answer.redirected ? "logged out" : "HTTP " + answer.status);
    return answer.text();
  }

  async function poll() {
    try {
      live.innerHTML = await fetchHtml(live.dataset.src);
      const now = state();
      const ended = now.dataset.ended === "true";
      if (now.dataset.version !== shown && (ended || Date.now() - resultsAt >= 3 * every)) {
        results.innerHTML = await fetchHtml(live.dataset.results);
        shown = now.dataset.version;
        results.dataset.version = shown;  // what the results show (tests wait for the final one)
        resultsAt = Date.now();
        document.dispatchEvent(new Event("results-updated"));
      }
      if (!ended) window.setTimeout(poll, every);
    } catch (error) {
      const note = document.createElement("p");
      note.className = "error";
      note.textContent = "Live updates stopped (" + error.message + "); reload the page.";
      live.appendChild(note);
    }
  }

  if (state() && state().dataset.ended === "false") window.setTimeout(poll, every);
})();
