// Sortable tables: click a column header of a table.sortable to sort by it; click again to reverse.
// Cells sort by their data-value when they have one (numbers), else by their text; blanks go last.
(function () {
  "use strict";
  function sortBy(table, index, header) {
    const body = table.tBodies[0];
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    const numeric = header.dataset.type === "number";
    const key = (row) => {
      const cell = row.cells[index];
      const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
      return numeric ? (raw === "" ? NaN : parseFloat(raw)) : raw.toLowerCase();
    };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (numeric && (isNaN(x) || isNaN(y))) return isNaN(x) - isNaN(y);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    for (const th of header.parentNode.children) th.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach((row) => body.appendChild(row));
  }

  function wire() {
    for (const table of document.querySelectorAll("table.sortable")) {
      Array.from(table.tHead.rows[0].cells).forEach((header, index) => {
        header.tabIndex = 0;
        header.addEventListener("click", () => sortBy(table, index, header));
        header.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(table, index, header); });
      });
    }
  }

  wire();
  document.addEventListener("results-updated", wire);  // live.js replaced the trial table
})();
