// The dashboard's script: polls /ui/api/* and fills the page the server rendered.
// Every value from the server is written with textContent or as a property, never as markup,
// so a project or model named like HTML shows as text. No dependencies, no build step.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const WINDOW_NAMES = { five_hour: "5-hour", seven_day: "7-day", seven_day_opus: "7-day Opus" };
  const CANCELLABLE = new Set(["validating", "in_progress"]);
  let serverSkewS = 0; // server clock minus this browser's, for countdowns

  // ---- formatting for people ----
  const integer = new Intl.NumberFormat();
  const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
  const usdFormats = [2, 4].map(
    (digits) =>
      new Intl.NumberFormat(undefined, {
        style: "currency",
        currency: "USD",
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      }),
  );
  const fmt = {
    int: (n) => integer.format(n),
    tokens: (n) => (n >= 10000 ? compact.format(n) : integer.format(n)),
    usd: (v) => usdFormats[v > 0 && v < 0.1 ? 1 : 0].format(v),
    ms: (v) => (v === null || v === undefined ? "–" : v < 1000 ? `${integer.format(v)} ms` : `${(v / 1000).toFixed(1)} s`),
    pct: (f) => percent.format(f),
    clock: (unix) => new Date(unix * 1000).toLocaleTimeString(),
    dateTime: (unix) => new Date(unix * 1000).toLocaleString(),
    hour: (unix) => new Date(unix * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    day: (unix) => new Date(unix * 1000).toLocaleDateString([], { month: "short", day: "numeric", timeZone: "UTC" }),
    duration(seconds) {
      if (seconds <= 0) return "now";
      const d = Math.floor(seconds / 86400);
      const h = Math.floor((seconds % 86400) / 3600);
      const m = Math.floor((seconds % 3600) / 60);
      const s = Math.floor(seconds % 60);
      if (d > 0) return `${d} d ${h} h`;
      if (h > 0) return `${h} h ${m} min`;
      return m > 0 ? `${m} min ${s} s` : `${s} s`;
    },
  };

  // ---- DOM helpers: text only ----
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  function setStat(scope, name, text) {
    const node = scope.querySelector(`[data-stat="${name}"]`);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // Keeps one row per key, in the given order, so controls keep focus across refreshes.
  function syncRows(tbody, items, keyOf, create, update) {
    const existing = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
    items.forEach((item, index) => {
      const key = String(keyOf(item));
      let row = existing.get(key);
      if (!row) {
        row = create(item);
        row.dataset.key = key;
      }
      existing.delete(key);
      update(row, item);
      if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] || null);
    });
    for (const row of existing.values()) row.remove();
  }

  // ---- talking to the server ----
  let problem = null;

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign("/ui"); // the session ended: back to the login page
      throw new Error("logged out");
    }
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  async function act(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken, Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (answer.error && answer.error.message) || `The server answered ${response.status}.`;
      showProblem(message);
      throw new Error(message);
    }
    showProblem(null);
    return answer;
  }

  function showProblem(message, kind = "action") {
    if (!problem) {
      problem = el("p", { className: "error", id: "problem", role: "alert" });
      problem.hidden = true;
      document.querySelector("main").prepend(problem);
    }
    problem.hidden = !message;
    problem.dataset.kind = kind;
    setText(problem, message || "");
  }

  // ---- overview ----
  function renderOverview(data) {
    const stats = data.stats;
    const scope = document.getElementById("overview");
    setStat(scope, "requests_per_minute", fmt.int(stats.requests_per_minute));
    setStat(scope, "requests_today", fmt.int(stats.requests_today));
    setStat(scope, "errors_last_hour", fmt.int(stats.errors_last_hour));
    setStat(scope, "latency_p50_ms", fmt.ms(stats.latency_p50_ms));
    setStat(scope, "latency_p99_ms", fmt.ms(stats.latency_p99_ms));
    setStat(scope, "spend_today_usd", fmt.usd(stats.spend_today_usd));
    setStat(scope, "spend_month_usd", fmt.usd(stats.spend_month_usd));
    const projects = [...new Set([...Object.keys(data.month.requests), ...Object.keys(data.day.requests)])].sort();
    drawChart("chart-requests-day", data.day, data.day.requests, projects, fmt.int, fmt.hour);
    drawChart("chart-spend-day", data.day, data.day.spend_usd, projects, fmt.usd, fmt.hour);
    drawChart("chart-requests-month", data.month, data.month.requests, projects, fmt.int, fmt.day);
    drawChart("chart-spend-month", data.month, data.month.spend_usd, projects, fmt.usd, fmt.day);
  }

  // One line per project over the buckets; the legend names the projects as text.
  function drawChart(id, series, values, projects, formatValue, formatTime) {
    const holder = document.getElementById(id);
    const width = 600;
    const height = 180;
    const pad = { left: 8, right: 8, top: 10, bottom: 22 };
    let top = 0;
    for (const name of projects) for (const v of values[name] || []) top = Math.max(top, v);
    const caption = holder.parentElement.querySelector("figcaption").textContent;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "plot" });
    chart.setAttribute("aria-label", `${caption}: peak ${formatValue(top)}`);
    const x = (i) => pad.left + (i * (width - pad.left - pad.right)) / Math.max(series.buckets - 1, 1);
    const y = (v) => height - pad.bottom - (top > 0 ? (v / top) * (height - pad.top - pad.bottom) : 0);
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "axis" }));
    const first = svg("text", { x: pad.left, y: height - 6, class: "tick" });
    first.textContent = formatTime(series.start);
    const last = svg("text", { x: width - pad.right, y: height - 6, class: "tick end" });
    last.textContent = formatTime(series.start + series.step * (series.buckets - 1));
    const peak = svg("text", { x: width - pad.right, y: pad.top + 2, class: "tick end" });
    peak.textContent = `peak ${formatValue(top)}`;
    chart.append(first, last, peak);
    const legend = el("ul", { className: "legend" });
    projects.forEach((name, index) => {
      const points = (values[name] || new Array(series.buckets).fill(0)).map((v, i) => `${x(i)},${y(v)}`);
      const line = svg("polyline", { points: points.join(" "), class: `line series-${index % 8}` });
      const title = svg("title");
      title.textContent = name;
      line.append(title);
      chart.append(line);
      const total = (values[name] || []).reduce((a, b) => a + b, 0);
      legend.append(el("li", {}, el("span", { className: `swatch series-${index % 8}` }), `${name}: ${formatValue(total)}`));
    });
    if (!projects.length) legend.append(el("li", {}, "No requests in this period."));
    holder.replaceChildren(chart, legend);
  }

  // ---- projects ----
  function createProjectRow(project) {
    const row = el("tr");
    const name = el("th", { scope: "row" });
    const cells = [name, el("td", { className: "num" }), el("td", { className: "num" })];
    const spend = el("td", { className: "budget" }, el("span", { className: "spent" }), el("meter", { min: 0 }));
    const limits = el("td");
    const keysCell = el("td", { className: "keys" }, el("ul"));
    const newKey = el("button", { type: "button", className: "new-key" }, "New key");
    newKey.setAttribute("aria-label", `Create a key for ${project.name}`);
    newKey.addEventListener("click", () => createKey(project.name));
    keysCell.append(newKey);
    const input = el("input", { type: "number", min: "0", step: "0.01", name: "budget_usd", placeholder: "none" });
    input.setAttribute("aria-label", `Budget in USD for ${project.name}`);
    const period = el("select", { name: "budget_period" });
    for (const p of ["total", "daily", "monthly"]) period.append(el("option", { value: p }, p));
    period.setAttribute("aria-label", `Budget period for ${project.name}`);
    const form = el("form", { className: "budget-form" }, input, period, el("button", { type: "submit" }, "Set"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const budget = input.value.trim() === "" ? null : Number(input.value);
      act(`/ui/api/projects/${encodeURIComponent(project.name)}/budget`, {
        budget_usd: budget,
        budget_period: period.value,
      })
        .then(refresh)
        .catch(() => {});
    });
    row.append(...cells, spend, limits, keysCell, el("td", {}, form));
    return row;
  }

  function updateProjectRow(row, project) {
    const [name, requests, tokens, spend, limits, keysCell, budgetCell] = row.cells;
    setText(name, project.name);
    setText(requests, fmt.int(project.requests));
    setText(tokens, fmt.tokens(project.tokens));
    const budget = project.budget;
    const meter = spend.querySelector("meter");
    if (budget.budget_usd === null) {
      setText(spend.querySelector(".spent"), `${fmt.usd(budget.spent_usd)} · no budget`);
      meter.hidden = true;
    } else {
      const period = budget.period === "total" ? "" : ` ${budget.period}`;
      setText(spend.querySelector(".spent"), `${fmt.usd(budget.spent_usd)} of ${fmt.usd(budget.budget_usd)}${period}`);
      meter.hidden = false;
      meter.max = budget.budget_usd || 1e-9;
      meter.value = Math.min(budget.spent_usd, meter.max);
      meter.low = meter.max * 0.75;
      meter.high = meter.max * 0.9;
      meter.optimum = 0;
      meter.textContent = fmt.pct(budget.budget_usd ? budget.spent_usd / budget.budget_usd : 1);
    }
    const parts = [];
    if (project.rpm !== null) parts.push(`${fmt.int(project.rpm)} rpm`);
    if (project.tpm !== null) parts.push(`${fmt.tokens(project.tpm)} tpm`);
    setText(limits, parts.length ? parts.join(" · ") : "none");
    const signature = project.keys.map((k) => `${k.id}:${k.prefix}`).join(",");
    if (keysCell.dataset.signature !== signature) {
      keysCell.dataset.signature = signature;
      const list = keysCell.querySelector("ul");
      list.replaceChildren(...project.keys.map((key) => keyItem(key)));
    }
    const form = budgetCell.querySelector("form");
    if (!form.contains(document.activeElement)) {
      form.budget_usd.value = budget.budget_usd === null ? "" : String(budget.budget_usd);
      form.budget_period.value = budget.period;
    }
  }

  function keyItem(key) {
    const revoke = el("button", { type: "button", className: "revoke" }, "Revoke");
    revoke.setAttribute("aria-label", `Revoke key ${key.prefix}`);
    let armed = null;
    revoke.addEventListener("click", () => {
      if (!armed) {
        // A second click confirms: revoking cannot be undone.
        revoke.textContent = "Confirm revoke";
        armed = setTimeout(() => {
          armed = null;
          revoke.textContent = "Revoke";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      revoke.disabled = true;
      act(`/ui/api/keys/${key.id}/revoke`)
        .then(refresh)
        .catch(() => {
          revoke.disabled = false;
        });
    });
    return el("li", {}, el("code", {}, key.prefix), " ", revoke);
  }

  async function createKey(projectName) {
    const created = await act(`/ui/api/projects/${encodeURIComponent(projectName)}/keys`).catch(() => null);
    if (!created) return;
    const box = document.getElementById("new-key");
    setText(document.getElementById("new-key-project"), created.project);
    setText(document.getElementById("new-key-value"), created.key);
    box.hidden = false;
    document.getElementById("new-key-dismiss").focus();
    refresh();
  }

  document.getElementById("new-key-dismiss").addEventListener("click", () => {
    document.getElementById("new-key").hidden = true;
    setText(document.getElementById("new-key-value"), "");
  });

  // ---- plan, pool, batches, recent requests ----
  function renderPlan(accounts) {
    const rows = [];
    for (const account of accounts) {
      for (const [window, state] of Object.entries(account.windows || {})) {
        const meter = el("meter", { min: 0, max: 1, low: 0.75, high: 0.9, optimum: 0 });
        const used = typeof state.utilization === "number" ? state.utilization : null;
        if (used !== null) meter.value = Math.min(used, 1);
        const resets = el("td", { className: "countdown" });
        if (state.resets_at) resets.dataset.resetsAt = String(state.resets_at);
        rows.push(
          el(
            "tr",
            {},
            el("th", { scope: "row" }, account.name),
            el("td", {}, WINDOW_NAMES[window] || window.replaceAll("_", " ")),
            el("td", {}, used === null ? "–" : meter, used === null ? null : ` ${fmt.pct(used)}`),
            resets,
            el("td", {}, state.status || account.status || "–"),
          ),
        );
      }
    }
    showEmpty("plan", rows.length === 0);
    document.getElementById("plan-rows").replaceChildren(...rows);
    tickCountdowns();
  }

  function renderShares(shares) {
    for (const [window, ranked] of Object.entries(shares)) {
      const node = document.querySelector(`[data-share="${window}"]`);
      const text = ranked.map((item) => `${item.project} ${fmt.pct(item.share)}`).join(" · ");
      setText(node, text || "no spend");
    }
  }

  function tickCountdowns() {
    const now = Date.now() / 1000 + serverSkewS;
    for (const cell of document.querySelectorAll("[data-resets-at]")) {
      setText(cell, fmt.duration(Number(cell.dataset.resetsAt) - now));
    }
  }

  function renderPool(pool) {
    document.getElementById("pool-none").hidden = pool !== null;
    const stats = document.getElementById("pool-stats");
    stats.hidden = pool === null;
    if (pool === null) return;
    for (const name of ["busy", "idle", "warm", "spares", "warm_hits", "reuse_hits"]) setStat(stats, name, fmt.int(pool[name] || 0));
    setStat(stats, "queued", fmt.int((pool.queued || 0) + (pool.queued_batch || 0)));
  }

  function showEmpty(section, empty) {
    document.getElementById(`${section}-none`).hidden = !empty;
    document.getElementById(`${section}-table`).hidden = empty;
  }

  function renderBatches(batches) {
    showEmpty("batches", batches.length === 0);
    syncRows(
      document.getElementById("batches-rows"),
      batches.map((row) => ({ ...row.batch, project: row.project })),
      (batch) => batch.id,
      (batch) => {
        const cancel = el("button", { type: "button", className: "cancel" }, "Cancel");
        cancel.setAttribute("aria-label", `Cancel batch ${batch.id}`);
        cancel.addEventListener("click", () => {
          cancel.disabled = true;
          act(`/ui/api/batches/${encodeURIComponent(batch.id)}/cancel`)
            .then(refresh)
            .catch(() => {
              cancel.disabled = false;
            });
        });
        const progress = el("td", {}, el("progress", { max: 1, value: 0 }), el("span"));
        return el(
          "tr",
          {},
          el("th", { scope: "row" }, el("code", {}, batch.id)),
          el("td"),
          el("td"),
          progress,
          el("td"),
          el("td", {}, cancel),
        );
      },
      (row, batch) => {
        const counts = batch.request_counts;
        const finished = counts.completed + counts.failed;
        setText(row.cells[1], batch.project);
        setText(row.cells[2], batch.status.replaceAll("_", " "));
        const bar = row.cells[3].querySelector("progress");
        bar.max = Math.max(counts.total, 1);
        bar.value = finished;
        const failed = counts.failed ? `, ${fmt.int(counts.failed)} failed` : "";
        setText(row.cells[3].querySelector("span"), ` ${fmt.int(finished)} of ${fmt.int(counts.total)}${failed}`);
        setText(row.cells[4], fmt.dateTime(batch.created_at));
        row.cells[5].querySelector("button").hidden = !CANCELLABLE.has(batch.status);
      },
    );
  }

  function renderRecent(requests) {
    showEmpty("recent", requests.length === 0);
    const rows = requests.map((r) => {
      const model = el("td", {}, r.model);
      if (r.resolved_model && r.resolved_model !== r.model) model.title = r.resolved_model;
      return el(
        "tr",
        { className: r.status === 200 ? "" : "failed" },
        el("td", {}, el("time", { dateTime: new Date(r.created_at * 1000).toISOString() }, fmt.clock(r.created_at))),
        el("td", {}, r.project),
        model,
        el("td", { className: "num" }, `${fmt.tokens(r.prompt_tokens)} → ${fmt.tokens(r.completion_tokens)}`),
        el("td", { className: "num" }, fmt.usd(r.cost_usd)),
        el("td", { className: "num" }, String(r.status)),
        el("td", { className: "num" }, fmt.ms(r.latency_ms)),
      );
    });
    document.getElementById("recent-rows").replaceChildren(...rows);
  }

  function renderLive(data) {
    serverSkewS = data.now - Date.now() / 1000;
    syncRows(document.getElementById("projects-rows"), data.projects, (p) => p.name, createProjectRow, updateProjectRow);
    renderPlan(data.accounts);
    renderShares(data.plan_shares);
    renderPool(data.pool);
    renderBatches(data.batches);
    renderRecent(data.recent);
  }

  // ---- the refresh loop ----
  let running = null;

  function refresh() {
    if (running) return running;
    running = Promise.all([getJSON("/ui/api/overview"), getJSON("/ui/api/live")])
      .then(([overview, liveData]) => {
        renderOverview(overview);
        renderLive(liveData);
        const updated = document.getElementById("updated");
        updated.dateTime = new Date().toISOString();
        setText(updated, new Date().toLocaleTimeString());
        if (problem && problem.dataset.kind === "refresh") showProblem(null);
      })
      .catch((error) => {
        if (error.message === "logged out") return;
        showProblem(`Could not refresh: ${error.message}`, "refresh");
      })
      .finally(() => {
        running = null;
      });
    return running;
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(tickCountdowns, 1000);
})();
