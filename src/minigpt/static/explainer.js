// The explainer: a live view inside the model for the text in the story box.
//
// Every change of the box or of a sampling slider asks GET /api/inspect once (the newest
// question wins; an older answer still on its way is dropped) and redraws every panel from
// that one answer: the next-token chart, the attention view and its heads, what each layer
// would guess, and the shapes. The learning curves come from GET /api/metrics. Plain DOM and
// SVG, no libraries, nothing fetched from anywhere but this server.
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const TOP = 12;  // next tokens in the chart
  const state = { layer: 0, head: null, pinned: null, hover: null, data: null, seq: 0,
                  controller: null, timer: null, undo: [] };

  function el(name, attrs = {}, text) {
    const node = name.startsWith("svg:") ? document.createElementNS(SVG, name.slice(4))
                                         : document.createElement(name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // How a token is shown: spaces and newlines visible, the end-of-story token named.
  function shown(token) {
    if (token === "<eos>") return "end";
    return token.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5");
  }
  const pct = (p) => (100 * p).toFixed(p >= 0.1 ? 1 : p >= 0.001 ? 2 : 3) + "%";

  function sampling() {
    const params = new URLSearchParams({ prompt: $("prompt").value, temperature: $("temperature").value });
    if ($("top_k").value !== "0") params.set("top_k", $("top_k").value);
    if ($("top_p").value !== "1") params.set("top_p", $("top_p").value);
    return params;
  }

  // One question to /api/inspect; null when a newer one was asked meanwhile, or on an error.
  async function ask(extra = {}) {
    const params = sampling();
    params.set("layer", state.layer);
    params.set("top", TOP);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    if (state.controller) state.controller.abort();
    const controller = state.controller = new AbortController();
    const seq = ++state.seq;
    let answer, data;
    try {
      answer = await fetch("/api/inspect?" + params, { signal: controller.signal });
      data = await answer.json();
    } catch (error) {
      if (error.name !== "AbortError" && seq === state.seq) $("inside-status").textContent = "the server did not answer";
      return null;
    }
    if (seq !== state.seq) return null;
    if (answer.status === 503) { schedule(300); return null; }  // busy: ask again in a moment
    if (!answer.ok) { $("inside-status").textContent = "error: " + data.error; return null; }
    $("inside-status").textContent = "";
    return data;
  }

  async function refresh() {
    const data = await ask();
    if (data) render(data);
  }
  function schedule(ms = 60) {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, ms);
  }

  function render(data) {
    state.data = data;
    if (state.pinned !== null && state.pinned >= data.tokens.length) state.pinned = null;
    drawNext(data);
    drawTokens(data);
    drawAttention();
    drawDepths(data);
    drawShapes(data);
    document.body.dataset.inspected = String(state.seq);  // for the browser tests: an answer is drawn
  }

  // --- the next-token chart: the model's probability (grey) and what sampling draws (blue)
  function drawNext(data, chosen = null) {
    const svg = $("next-chart");
    svg.textContent = "";
    const rows = data.next.map((r) => ({ ...r, label: shown(r.token) }));
    rows.push({ token: null, label: "others", ...data.rest });
    const height = 22, width = 380, left = 44, right = 112;
    svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * height + 4}`);
    rows.forEach((row, i) => {
      const g = el("svg:g", { class: "bar", transform: `translate(0 ${i * height + 2})`,
                              "data-model-p": row.model_p, "data-sampled-p": row.sampled_p });
      if (row.token !== null) g.dataset.token = row.token;
      if (chosen !== null && row.token === chosen) g.classList.add("chosen");
      const span = width - left - right;
      g.append(el("svg:text", { class: "name", x: 4, y: 14 }, row.label),
               el("svg:rect", { class: "model", x: left, y: 2, height: 8, width: Math.max(0.5, span * row.model_p) }),
               el("svg:rect", { class: "sampled", x: left, y: 11, height: 8, width: span * row.sampled_p }),
               el("svg:text", { x: width - right + 6, y: 14 }, `${pct(row.model_p)} \u2192 ${pct(row.sampled_p)}`));
      g.append(el("svg:title", {}, `${row.label}: the model ${pct(row.model_p)}, sampling ${pct(row.sampled_p)}`));
      svg.append(g);
    });
  }

  // --- the attention view: the tokens in a row; the one under the pointer (or tapped, or the
  // last) is the query, and the shading of every earlier token is how much it is looked at
  function query() {
    const n = state.data ? state.data.tokens.length : 0;
    return state.hover ?? state.pinned ?? n - 1;
  }
  function drawTokens(data) {
    const row = $("tokens");
    row.textContent = "";
    data.tokens.forEach((token, i) => {
      const special = token === "<eos>";
      const span = el("span", { class: "tok" + (special ? " special" : token.trim() === "" ? " space" : ""),
                                "data-index": i }, special ? "\u25c6" : shown(token));
      span.addEventListener("mouseenter", () => { state.hover = i; drawAttention(); });
      span.addEventListener("mouseleave", () => { state.hover = null; drawAttention(); });
      span.addEventListener("click", () => { state.pinned = state.pinned === i ? null : i; drawAttention(); });
      row.append(span);
    });
    $("tokens-note").textContent = data.first > 0 ? `(the last ${data.tokens.length} of the ${data.total} tokens the model read; ` +
      "earlier ones are left out of the view, not out of the model)" : "";
  }
  // The layer the answer on screen holds (a click on another layer shows once its answer is in).
  const shownLayer = () => state.data.layer;
  function weightsOf(head, q) {  // head null: the mean over the layer's heads
    const layer = state.data.attention[shownLayer()];
    if (head !== null) return layer[head][q];
    const mean = layer[0][q].map(() => 0);
    for (const h of layer) h[q].forEach((w, k) => { mean[k] += w / layer.length; });
    return mean;
  }
  function drawAttention() {
    if (!state.data) return;
    const q = query(), weights = weightsOf(state.head, q), tokens = state.data.tokens;
    const most = Math.max(...weights);  // the row's largest weight is the darkest shade
    document.querySelectorAll("#tokens .tok").forEach((span, k) => {
      const w = weights[k], shade = most > 0 ? 0.9 * Math.sqrt(w / most) : 0;
      span.classList.toggle("query", k === q);
      span.classList.toggle("pinned", k === state.pinned);
      span.classList.toggle("future", k > q);
      span.dataset.weight = w;
      span.style.background = k <= q && w > 0 ? `rgba(58, 110, 165, ${shade.toFixed(3)})` : "";
      span.style.color = k <= q && shade > 0.55 ? "#fff" : "";
      span.title = `${JSON.stringify(tokens[k])}: ${k <= q ? pct(w) + " of the attention" : "later: not seen"}`;
    });
    const best = weights.map((w, k) => [w, k]).filter(([w]) => w > 0).sort((a, b) => b[0] - a[0]).slice(0, 3);
    const L = shownLayer();
    const who = state.head === null ? `the ${state.data.attention[L].length} heads of layer ${L} on average`
                                    : `head ${state.head} of layer ${L}`;
    $("attention-caption").textContent = `Reading ${JSON.stringify(tokens[q])} (position ${q}), ${who} look${state.head === null ? "" : "s"} most at ` +
      best.map(([w, k]) => `${JSON.stringify(tokens[k])} ${pct(w)}`).join(", ") + ".";
    drawHeads(q);
  }

  // --- a small picture of every head of the layer: row = query, column = key; the query's row
  // is outlined, and under it the token that head looks at most
  function drawHeads(q) {
    const grid = $("head-grid"), heads = state.data.attention[shownLayer()], n = state.data.tokens.length;
    if (grid.children.length !== heads.length + 1) {
      grid.textContent = "";
      const all = el("button", { class: "head", "data-head": "all" }, "all heads (mean)");
      all.addEventListener("click", () => { state.head = null; drawAttention(); });
      grid.append(all);
      heads.forEach((_, h) => {
        const card = el("button", { class: "head", "data-head": h });
        card.append(el("canvas"), el("div", {}, `head ${h}`), el("div", { class: "top" }));
        card.addEventListener("click", () => { state.head = state.head === h ? null : h; drawAttention(); });
        grid.append(card);
      });
    }
    grid.querySelectorAll(".head").forEach((card) => {
      const h = card.dataset.head === "all" ? null : Number(card.dataset.head);
      card.setAttribute("aria-pressed", String(h === state.head));
      if (h === null) return;
      const canvas = card.querySelector("canvas"), scale = Math.max(1, Math.floor(128 / n));
      canvas.width = canvas.height = n * scale;
      const ctx = canvas.getContext("2d");
      heads[h].forEach((row, i) => row.forEach((w, k) => {
        if (k > i) return;
        const a = Math.min(1, Math.sqrt(w));  // white (0) to the page's blue (1)
        ctx.fillStyle = `rgb(${255 - 197 * a}, ${255 - 145 * a}, ${255 - 90 * a})`;
        ctx.fillRect(k * scale, i * scale, scale, scale);
      }));
      ctx.strokeStyle = "#b3261e";
      ctx.lineWidth = Math.max(1, scale / 2);
      ctx.strokeRect(0, q * scale, n * scale, scale);
      const row = heads[h][q], k = row.indexOf(Math.max(...row));
      card.querySelector(".top").textContent = `\u2192 ${shown(state.data.tokens[k])} ${pct(row[k])}`;
    });
  }

  // --- the residual stream at every depth: its size, and what it would predict already
  function drawDepths(data) {
    const table = $("depth-table");
    table.textContent = "";
    const head = table.insertRow();
    for (const name of ["depth", "|x| (mean)", "would guess next"]) head.append(el("th", {}, name));
    const widest = Math.max(...data.residual.map((d) => d.mean_norm));
    for (const depth of data.residual) {
      const tr = table.insertRow();
      tr.insertCell().textContent = depth.name;
      const norm = tr.insertCell();
      norm.append(el("span", { class: "norm-bar", style: `width: ${(60 * depth.mean_norm / widest).toFixed(1)}px` }),
                  document.createTextNode(" " + depth.mean_norm.toFixed(1)));
      tr.insertCell().textContent = depth.predicts.map((g) => `${shown(g.token)} ${pct(g.p)}`).join("  ");
    }
  }

  // --- the shapes a batch of this one prompt takes, stage by stage, with this model's numbers
  function drawShapes(data) {
    const s = data.shapes;
    $("shape-letters").textContent = `B = ${s.B} prompt, T = ${s.T} tokens, C = n_embd = ${s.C}, H = ${s.H} heads ` +
      `of D = ${s.D}, F = ${s.F}, V = ${s.V} tokens in the vocabulary; ${s.n_layers} blocks, block_size ${s.block_size}`;
    const table = $("shapes-table");
    table.textContent = "";
    for (const stage of s.stages) {
      const tr = table.insertRow();
      tr.insertCell().textContent = stage.name;
      tr.insertCell().append(el("span", { class: "shape" }, `(${stage.shape.join(", ")})`));
      tr.insertCell().append(el("span", { class: "dims" }, stage.dims));
    }
  }

  // --- one step: draw one token from the distribution shown, as generation would, and append it
  async function oneStep() {
    const extra = {};
    if ($("seed").value !== "") extra.seed = Number($("seed").value) + state.undo.length;
    const before = $("prompt").value;
    clearTimeout(state.timer);  // a redraw still pending would abort this question
    $("one-step").disabled = true;  // one step at a time: a second click waits for this one
    const data = await ask(extra).finally(() => { $("one-step").disabled = false; });
    if (!data) return;
    render(data);
    const pick = data.sample;
    drawNext(data, pick.token);
    const entry = el("li", { "data-token": pick.token, "data-sampled-p": pick.sampled_p });
    const alternatives = data.next.filter((r) => r.sampled_p > 0).slice(0, 4)
      .map((r) => `${shown(r.token)} ${pct(r.sampled_p)}`).join(" \u00b7 ");
    entry.append(document.createTextNode(pick.token === "<eos>" ? "the model ended the story "
                                         : `drew ${JSON.stringify(pick.token)} (${pct(pick.sampled_p)}) `),
                 el("span", { class: "alts" }, `from ${alternatives}`));
    $("step-log").prepend(entry);
    if (pick.token === "<eos>") return;
    state.undo.push(before);
    $("undo-step").disabled = false;
    // A subword model's held-back space is already in the box: the token adds the rest of itself.
    $("prompt").value = (before + pick.token.slice(data.held.length)).slice(-Number($("prompt").maxLength || 1000));
    schedule(400);  // the chart keeps showing the drawn-from distribution for a moment
  }
  function undoStep() {
    if (!state.undo.length) return;
    $("prompt").value = state.undo.pop();
    $("undo-step").disabled = state.undo.length === 0;
    $("step-log").querySelector("li:not([data-token='<eos>'])")?.remove();  // the step undone
    schedule(0);
  }

  // --- the learning curves of the run (metrics.jsonl), hover for the numbers
  async function drawCurves() {
    const svg = $("loss-chart");
    const records = (await (await fetch("/api/metrics")).json()).records || [];
    const points = records.filter((r) => r.val_bpc !== null || r.train_bpc !== null);
    svg.textContent = "";
    if (!points.length) { $("loss-tip").textContent = "this model has no metrics.jsonl: no curves to draw"; return; }
    const W = 600, H = 220, L = 40, R = 10, T = 10, B = 28;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const steps = points.map((r) => r.step), values = points.flatMap((r) => [r.train_bpc, r.val_bpc]).filter((v) => v !== null);
    const [x0, x1] = [Math.min(...steps, 0), Math.max(...steps, 1)];
    const [y0, y1] = [Math.min(...values) * 0.95, Math.max(...values) * 1.02];
    const x = (s) => L + (W - L - R) * (s - x0) / Math.max(1, x1 - x0);
    const y = (v) => T + (H - T - B) * (1 - (v - y0) / Math.max(1e-9, y1 - y0));
    svg.append(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
               el("svg:line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
               el("svg:text", { x: L, y: H - 8 }, `step ${x0}`),
               el("svg:text", { x: W - R, y: H - 8, "text-anchor": "end" }, `step ${x1}`),
               el("svg:text", { x: 2, y: T + 10 }, y1.toFixed(2)),
               el("svg:text", { x: 2, y: H - B }, y0.toFixed(2)));
    for (const [key, color] of [["train_bpc", "#999"], ["val_bpc", "#3a6ea5"]]) {
      const line = points.filter((r) => r[key] !== null).map((r) => `${x(r.step).toFixed(1)},${y(r[key]).toFixed(1)}`);
      svg.append(el("svg:polyline", { points: line.join(" "), fill: "none", stroke: color, "stroke-width": 2, "data-series": key }));
    }
    const cursor = el("svg:line", { class: "axis", y1: T, y2: H - B, x1: -10, x2: -10 });
    svg.append(cursor);
    svg.addEventListener("mousemove", (event) => {
      const box = svg.getBoundingClientRect(), at = x0 + (((event.clientX - box.left) * W / box.width) - L) / (W - L - R) * (x1 - x0);
      const r = points.reduce((a, b) => (Math.abs(b.step - at) < Math.abs(a.step - at) ? b : a));
      cursor.setAttribute("x1", x(r.step)); cursor.setAttribute("x2", x(r.step));
      const f = (v) => (v === null ? "-" : v.toFixed(3));
      $("loss-tip").textContent = `step ${r.step}: train ${f(r.train_bpc)}, held-out ${f(r.val_bpc)} bits/char` +
        (r.lr !== null ? `, learning rate ${r.lr.toExponential(2)}` : "") +
        (r.chars_per_s !== null ? `, ${Math.round(r.chars_per_s).toLocaleString()} chars/s` : "");
    });
  }

  async function start() {
    const facts = await (await fetch("/api/model")).json();
    const picker = $("layer-picker");
    for (let i = 0; i < facts.n_layers; i++) {
      const button = el("button", { "data-layer": i, "aria-pressed": String(i === 0) }, String(i));
      button.addEventListener("click", () => {
        state.layer = i;
        picker.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
        $("head-grid").textContent = "";
        refresh();
      });
      picker.append(button);
    }
    $("prompt").addEventListener("input", () => { state.pinned = null; schedule(); });
    for (const id of ["temperature", "top_k", "top_p"]) $(id).addEventListener("input", () => schedule());
    $("one-step").addEventListener("click", oneStep);
    $("undo-step").addEventListener("click", undoStep);
    refresh();
    drawCurves();
  }
  start();
})();
