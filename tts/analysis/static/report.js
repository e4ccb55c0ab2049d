// tts-sweep report.html: sortable, filterable tables; SVG charts with hover; the search-trace viewer.
// Vanilla JS, inlined by tts.analysis.html_report; reads the JSON payload of the element #report-data.
// Every model text is set through textContent (never innerHTML): step texts are untrusted.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const $ = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  };
  const NS = "http://www.w3.org/2000/svg";
  const S = (tag, attrs) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const tip = document.getElementById("tooltip");
  const showTip = (ev, text) => {
    tip.textContent = text; tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 430) + "px"; tip.style.top = ev.clientY + 12 + "px";
  };
  const hideTip = () => { tip.style.display = "none"; };
  const num = (s) => { const m = /^[<+]?(-?\d+(\.\d+)?(e[+-]?\d+)?)/i.exec(String(s).trim()); return m ? parseFloat(m[1]) : NaN; };
  const f3 = (v) => (v == null || isNaN(v) ? "-" : Number(v).toFixed(3));

  // ---------------------------------------------------------------- tabs
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("nav button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll("section.tab").forEach((s) => s.classList.toggle("active", s.id === b.dataset.tab));
  }));

  // ---------------------------------------------------------------- tables
  function renderTable(spec, host) {
    const wrap = $("div", { class: "table-block", id: "table-" + spec.id });
    wrap.append($("h2", { text: spec.title }));
    if (spec.note) wrap.append($("div", { class: "note", text: spec.note }));
    if (!spec.rows.length) { wrap.append($("div", { class: "note", text: "No rows." })); host.append(wrap); return; }
    const filters = $("div", { class: "filters" });
    const state = { sortCol: -1, dir: 1, sel: {}, text: "" };
    spec.filters.forEach((ci) => {
      const values = [...new Set(spec.rows.map((r) => r.cells[ci]))].sort((a, b) => (num(a) - num(b)) || String(a).localeCompare(String(b)));
      const sel = $("select", { "data-filter": spec.columns[ci].key }, $("option", { value: "", text: "all" }));
      values.forEach((v) => sel.append($("option", { value: v, text: v })));
      sel.addEventListener("change", () => { state.sel[ci] = sel.value; draw(); });
      filters.append($("label", {}, spec.columns[ci].label + ":", sel));
    });
    const search = $("input", { type: "search", placeholder: "filter text…", "data-filter": "text" });
    search.addEventListener("input", () => { state.text = search.value.toLowerCase(); draw(); });
    const count = $("span", { class: "count" });
    filters.append(search, count);
    wrap.append(filters);
    const table = $("table", { class: "data" });
    const head = $("tr");
    spec.columns.forEach((c, ci) => {
      const th = $("th", { text: c.label, "data-key": c.key });
      th.addEventListener("click", () => {
        state.dir = state.sortCol === ci ? -state.dir : 1; state.sortCol = ci; draw();
      });
      head.append(th);
    });
    const tbody = $("tbody");
    table.append($("thead", {}, head), tbody);
    wrap.append($("div", { class: "tablewrap" }, table));
    host.append(wrap);
    function draw() {
      let rows = spec.rows.filter((r) => Object.entries(state.sel).every(([ci, v]) => !v || r.cells[ci] === v)
        && (!state.text || r.cells.join(" ").toLowerCase().includes(state.text)));
      if (state.sortCol >= 0) {
        const ci = state.sortCol;
        rows = rows.slice().sort((a, b) => {
          const x = num(a.cells[ci]), y = num(b.cells[ci]);
          const c = !isNaN(x) && !isNaN(y) ? x - y : String(a.cells[ci]).localeCompare(String(b.cells[ci]));
          return c * state.dir;
        });
      }
      head.querySelectorAll("th").forEach((th, i) => {
        th.classList.toggle("sorted-asc", i === state.sortCol && state.dir > 0);
        th.classList.toggle("sorted-desc", i === state.sortCol && state.dir < 0);
      });
      tbody.replaceChildren(...rows.map((r) => {
        const tr = $("tr", { class: (r.flags || []).join(" ") });
        r.cells.forEach((v, i) => {
          const td = $("td", { text: v });
          if (i === 0 && (r.flags || []).includes("incomplete")) td.append($("span", { class: "badge", text: "incomplete" }));
          tr.append(td);
        });
        return tr;
      }));
      count.textContent = rows.length + " of " + spec.rows.length + " rows";
    }
    draw();
  }
  const tablesHost = document.getElementById("tables");
  D.tables.forEach((t) => renderTable(t, tablesHost));

  // ---------------------------------------------------------------- charts
  const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#bb6bd9", "#219653", "#f2c94c", "#828282"];
  function lineChart(host, spec) {
    const W = 900, H = 380, L = 60, R = 16, T = 16, B = 44;
    const box = $("div", { class: "chart", "data-chart": spec.id });
    box.append($("h2", { text: spec.title }));
    if (spec.note) box.append($("div", { class: "note", text: spec.note }));
    const controls = $("div", { class: "filters" });
    const bins = [...new Set(spec.points.map((p) => p.bin))];
    const binSel = $("select", { "data-chart-filter": "bin" });
    bins.forEach((b) => binSel.append($("option", { value: b, text: b })));
    if (bins.includes(spec.defaultBin)) binSel.value = spec.defaultBin;
    controls.append($("label", {}, "bin:", binSel));
    box.append(controls);
    const svg = S("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` });
    const legend = $("div", { class: "legend" });
    box.append(svg, legend);
    host.append(box);
    const hidden = new Set();
    const tx = (v, lo, hi) => L + (spec.xlog ? (Math.log(v) - Math.log(lo)) / ((Math.log(hi) - Math.log(lo)) || 1) : (v - lo) / ((hi - lo) || 1)) * (W - L - R);
    function draw() {
      svg.replaceChildren(); legend.replaceChildren();
      const pts = spec.points.filter((p) => p.bin === binSel.value && p.x > 0 && p.y != null);
      const names = [...new Set(pts.map((p) => p.series))];
      if (!pts.length) { const t = S("text", { x: L, y: H / 2 }); t.textContent = "no points in this bin"; svg.append(t); return; }
      const xs = pts.map((p) => p.x), ys = pts.flatMap((p) => [p.lo ?? p.y, p.hi ?? p.y]);
      let x0 = Math.min(...xs), x1 = Math.max(...xs);
      if (x0 === x1) { x0 = spec.xlog ? x0 / 2 : x0 - 1; x1 = spec.xlog ? x1 * 2 : x1 + 1; }
      const y0 = Math.max(0, Math.min(...ys) - 0.05), y1 = Math.min(1, Math.max(...ys) + 0.05) || 1;
      const X = (v) => tx(v, x0, x1), Y = (v) => T + (1 - (v - y0) / ((y1 - y0) || 1)) * (H - T - B);
      svg.append(S("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9aa3b5" }), S("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#9aa3b5" }));
      for (let i = 0; i <= 4; i++) {
        const v = y0 + (y1 - y0) * i / 4, t = S("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 10 });
        t.textContent = v.toFixed(2); svg.append(t, S("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), stroke: "#eef0f4" }));
      }
      const ticks = [...new Set(xs)].sort((a, b) => a - b);
      const step = Math.ceil(ticks.length / 10);
      ticks.filter((_, i) => i % step === 0).forEach((v) => {
        const t = S("text", { x: X(v), y: H - B + 14, "text-anchor": "middle", "font-size": 10 });
        t.textContent = v >= 1e5 ? v.toExponential(1) : (Number.isInteger(v) ? v : v.toFixed(1)); svg.append(t);
      });
      const xl = S("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 11 }); xl.textContent = spec.xlabel;
      const yl = S("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 11, transform: `rotate(-90 14 ${(T + H - B) / 2})` }); yl.textContent = spec.ylabel;
      svg.append(xl, yl);
      names.forEach((name, si) => {
        const color = COLORS[si % COLORS.length];
        const item = $("span", { class: hidden.has(name) ? "off" : "", "data-series": name }, $("i", { style: "background:" + color }), name);
        item.addEventListener("click", () => { hidden.has(name) ? hidden.delete(name) : hidden.add(name); draw(); });
        legend.append(item);
        if (hidden.has(name)) return;
        const ps = pts.filter((p) => p.series === name).sort((a, b) => a.x - b.x);
        svg.append(S("polyline", { points: ps.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: color, "stroke-width": 1.6 }));
        ps.forEach((p) => {
          if (p.lo != null && p.hi != null) svg.append(S("line", { x1: X(p.x), x2: X(p.x), y1: Y(p.lo), y2: Y(p.hi), stroke: color, "stroke-opacity": 0.5 }));
          const c = S("circle", { cx: X(p.x), cy: Y(p.y), r: 4.5, fill: color, class: "pt" });
          c.addEventListener("mousemove", (ev) => showTip(ev, p.tip));
          c.addEventListener("mouseleave", hideTip);
          svg.append(c);
        });
      });
    }
    binSel.addEventListener("change", draw);
    draw();
  }
  const chartsHost = document.getElementById("charts");
  D.charts.forEach((c) => lineChart(chartsHost, c));

  // ---------------------------------------------------------------- trace viewer
  const tv = document.getElementById("traces");
  if (!D.traces.length) {
    tv.append($("div", { class: "note", text: D.trace_note }));
  } else {
    const configs = [...new Set(D.traces.map((t) => t.config))];
    const cfgSel = $("select", { id: "trace-config" }), probSel = $("select", { id: "trace-problem" });
    configs.forEach((c) => cfgSel.append($("option", { value: c, text: c })));
    const view = $("div", { id: "trace-view" });
    tv.append($("div", { class: "note", text: D.trace_note }), $("div", { class: "trace-pick" }, $("label", {}, "configuration: ", cfgSel), $("label", {}, "problem: ", probSel)), view);
    const fillProblems = () => {
      probSel.replaceChildren();
      D.traces.forEach((t, i) => { if (t.config === cfgSel.value) probSel.append($("option", { value: i, text: `${t.problem_id} (level ${t.level}) ${t.correct ? "✓" : "✗"}` })); });
      showTrace(D.traces[probSel.value]);
    };
    cfgSel.addEventListener("change", fillProblems);
    probSel.addEventListener("change", () => showTrace(D.traces[probSel.value]));
    fillProblems();
  }

  function showTrace(t) {
    const view = document.getElementById("trace-view");
    view.replaceChildren();
    const extra = (t.trace && t.trace.extra) || {}, cands = (t.trace && t.trace.candidates) || [];
    const chosen = extra.chosen ?? 0;
    view.append($("div", { class: "grade" }, "answer ", $("b", { text: String(t.answer) }), " · reference ", $("b", { text: String(t.reference) }), " · ",
      $("span", { class: t.correct ? "ok" : "bad", text: t.correct ? "correct" : "wrong", id: "trace-grade" }),
      ` · ${t.strategy}, N = ${t.n}, final selection: ${extra.final_selection ?? "-"}`));
    // votes: per answer, count and summed score over the final candidates
    const votes = {};
    (t.cand_answers || []).forEach((a, i) => { const k = a ?? "(none)"; votes[k] = votes[k] || { n: 0, s: 0, ok: t.cand_correct[i] }; votes[k].n += 1; votes[k].s += t.cand_scores[i] || 0; });
    const vt = $("table", { class: "data", id: "trace-votes" }, $("thead", {}, $("tr", {}, ...["answer", "votes", "score sum", "correct"].map((h) => $("th", { text: h })))));
    const vb = $("tbody");
    Object.entries(votes).sort((a, b) => b[1].n - a[1].n).forEach(([a, v]) => vb.append($("tr", {}, $("td", { text: a }), $("td", { text: v.n }), $("td", { text: f3(v.s) }), $("td", { text: v.ok ? "✓" : "✗" }))));
    vt.append(vb);
    view.append($("h2", { text: "Votes over the final candidates" }), $("div", { class: "tablewrap" }, vt));
    if (extra.tree && extra.tree.parent) view.append(drawTree(extra.tree, chosen, cands));
    if (extra.chains) view.append(drawChains(t, extra, chosen));
    // candidates with their steps and per-step scores
    const ct = $("div", { id: "trace-candidates" });
    view.append($("h2", { text: "Final candidates (best score first), their steps and per-step PRM scores" }), ct);
    cands.forEach((c, i) => {
      const d = $("div", { class: "detail" + (i === chosen ? " chosen" : ""), "data-candidate": i });
      d.append($("b", { text: `#${i}${i === chosen ? " (chosen)" : ""} answer ${t.cand_answers[i]} · score ${f3(t.cand_scores[i])} · ${t.cand_correct[i] ? "correct" : "wrong"} · ${t.cand_finish[i] || ""}\n` }));
      c.steps.forEach((s, j) => d.append($("span", { class: "step", text: s }), $("span", { class: "score", text: f3(c.step_scores[j]) }), "\n"));
      ct.append(d);
    });
  }

  function drawTree(tree, chosen, cands) {
    const n = tree.parent.length;
    const leaf = (tree.candidate_nodes || [])[chosen];
    const onPath = new Set();
    for (let k = leaf; k != null && k >= 0; k = tree.parent[k]) onPath.add(k);
    const box = $("div", {});
    box.append($("h2", { text: `Search tree: ${n} nodes, level by level (blue kept, green finished, faded dropped; ×k resampled copies; outlined: the chosen leaf and its path)` }));
    const wrap = $("div", { class: "tree", id: "trace-tree", "data-nodes": n });
    const depth = Math.max(0, ...tree.depth);
    const detail = $("div", { class: "detail", id: "node-detail", text: "Click a node: its whole path, step by step, with scores." });
    const nodes = [];
    for (let d = 1; d <= depth; d++) {
      const col = $("div", { class: "level" }, $("h4", { text: "step " + d }));
      for (let k = 0; k < n; k++) {
        if (tree.depth[k] !== d) continue;
        const cls = ["node", tree.status[k]];
        if (onPath.has(k)) cls.push("onpath");
        if (k === leaf) cls.push("chosen");
        const copies = tree.copies[k] > 1 ? ` ×${tree.copies[k]}` : "";
        const e = $("div", { class: cls.join(" "), "data-node": k },
          `#${k} ← ${tree.parent[k] < 0 ? "root" : "#" + tree.parent[k]}${tree.group && new Set(tree.group).size > 1 ? " g" + tree.group[k] : ""} · ${f3(tree.step_score[k])}${copies}`,
          $("span", { class: "txt", text: tree.text[k] }));
        e.addEventListener("mousemove", (ev) => showTip(ev, `node #${k} (${tree.status[k]}${copies})\nstep score ${f3(tree.step_score[k])} · rank ${f3(tree.rank[k])}\n\n${tree.text[k]}`));
        e.addEventListener("mouseleave", hideTip);
        e.addEventListener("click", () => {
          nodes.forEach((x) => x.classList.remove("sel")); e.classList.add("sel");
          const path = []; for (let j = k; j >= 0; j = tree.parent[j]) path.unshift(j);
          detail.replaceChildren();
          path.forEach((j) => detail.append($("span", { class: "step", text: tree.text[j] }), $("span", { class: "score", text: `#${j} ${f3(tree.step_score[j])}` }), "\n"));
        });
        nodes.push(e); col.append(e);
      }
      wrap.append(col);
    }
    box.append(wrap, detail);
    return box;
  }

  function drawChains(t, extra, chosen) {
    const box = $("div", { id: "trace-chains" }, $("h2", { text: "Revision chains: each chain's attempts in order" }));
    const chains = {};
    extra.chains.forEach(([k, j], i) => { (chains[k] = chains[k] || []).push([j, i]); });
    Object.entries(chains).forEach(([k, items]) => {
      const row = $("div", { class: "chain" }, `chain ${k}: `);
      items.sort((a, b) => a[0] - b[0]).forEach(([j, i]) => row.append($("span", { class: "attempt" + (i === chosen ? " chosen" : ""), text: `${j + 1}. ${t.cand_answers[i]} (${f3(t.cand_scores[i])}) ${t.cand_correct[i] ? "✓" : "✗"}` })));
      box.append(row);
    });
    return box;
  }
})();
