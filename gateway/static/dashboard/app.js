// VaultCraft analytics dashboard: sign in, then poll /api/v1/analytics/* and redraw.
// No framework and no outside assets: Chart.js is served by the gateway itself.
// User-supplied text (wallet and organization names) only ever goes through textContent.
"use strict";

(function () {
  const API = "/api/v1";
  const TOKEN_KEY = "vaultcraft.token";
  const REFRESH_MS = 5000;
  const COLORS = {
    COMPLETED: "#2f9e44", FAILED: "#e03131", CANCELLED: "#868e96",
    accent: "#3b5bdb", accentSoft: "rgba(59, 91, 219, .18)", line: "#f08c00",
    types: { PRIMARY: "#3b5bdb", BONUS: "#ae3ec9", SYSTEM: "#0c8599", CLEARING: "#f08c00" },
  };
  const state = { token: sessionStorage.getItem(TOKEN_KEY), charts: {}, timer: null, data: {}, refreshedAt: null };
  window.dashboardState = state; // read by the browser test and handy in devtools

  const $ = (id) => document.getElementById(id);
  const show = (id, on) => { $(id).hidden = !on; };

  class AuthError extends Error {}

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const resp = await fetch(API + path, { ...options, headers });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) throw new AuthError(body.detail || "Please sign in again.");
    if (!resp.ok) throw new Error(body.detail || `${resp.status} ${resp.statusText}`);
    return body;
  }
  window.dashboardApi = api; // the transfers explorer (explorer.js) signs in through it

  // ---- sign in / out -------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    show("login-error", false);
    $("login-button").disabled = true;
    try {
      const resp = await fetch(`${API}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: $("email").value, password: $("password").value }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(body.detail || "Sign-in failed.");
      state.token = body.access_token;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $("password").value = "";
      await start();
    } catch (err) {
      $("login-error").textContent = err.message;
      show("login-error", true);
    } finally {
      $("login-button").disabled = false;
    }
  }

  function logout(message) {
    clearInterval(state.timer);
    state.timer = null;
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    show("dashboard-view", false);
    show("who", false);
    show("login-view", true);
    if (message) {
      $("login-error").textContent = message;
      show("login-error", true);
    }
  }

  async function start() {
    let me;
    try {
      me = await api("/auth/me");
    } catch (err) {
      logout(err instanceof AuthError ? null : err.message);
      return;
    }
    $("org-name").textContent = me.organization.name;
    $("user-email").textContent = me.email;
    show("who", true);
    show("login-view", false);
    if (me.role !== "ADMIN") {
      logout("Analytics are available to organization admins only.");
      return;
    }
    show("dashboard-view", true);
    await loadWallets().catch((err) => {
      $("wallet-error").textContent = `Could not list wallets: ${err.message}`;
      show("wallet-error", true);
    });
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(refresh, REFRESH_MS);
  }

  // ---- data ----------------------------------------------------------------------

  function rangeQuery() {
    const hours = Number($("range").value);
    const to = new Date();
    const from = new Date(to.getTime() - hours * 3600 * 1000);
    return `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  }

  async function refresh() {
    const q = rangeQuery();
    try {
      const names = ["volume", "statuses", "top-wallets", "balances", "backlog", "reconciliation", "settlements"];
      const paths = [`/analytics/volume?${q}`, `/analytics/statuses?${q}`, "/analytics/top-wallets",
        "/analytics/balances", "/analytics/backlog", "/analytics/reconciliation", "/analytics/settlements"];
      const results = await Promise.all(paths.map((p) => api(p)));
      names.forEach((name, i) => { state.data[name] = results[i]; });
      render();
      state.refreshedAt = new Date();
      $("refreshed").textContent = `Updated ${state.refreshedAt.toLocaleTimeString()}`;
      $("live").classList.remove("stale");
      show("dashboard-error", false);
      document.body.dataset.ready = "true";
    } catch (err) {
      if (err instanceof AuthError) { logout(err.message); return; }
      $("live").classList.add("stale");
      $("dashboard-error").textContent = `Could not refresh: ${err.message}`;
      show("dashboard-error", true);
    }
  }

  function currencies() {
    const seen = new Set();
    for (const key of ["volume", "statuses", "balances", "backlog"]) {
      for (const row of (state.data[key] || {}).data || []) seen.add(row.currency);
    }
    return [...seen].sort();
  }

  function pick(name, currency) {
    return ((state.data[name] || {}).data || []).find((row) => row.currency === currency);
  }

  // ---- rendering -----------------------------------------------------------------

  const num = (s) => Number(s); // display only: the API keeps money as exact strings
  const fmt = (s, currency) => `${Number(s).toLocaleString(undefined, { maximumFractionDigits: 2 })} ${currency}`;
  const int = (n) => Number(n).toLocaleString();

  function label(t, bucket) {
    const d = new Date(t);
    if (bucket === "day") return d.toLocaleDateString([], { month: "short", day: "numeric" });
    if (bucket === "hour") return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" }) ;
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function chart(id, config) {
    const existing = state.charts[id];
    if (existing && existing.config.type === config.type) {
      existing.data.labels = config.data.labels;
      existing.data.datasets.forEach((ds, i) => Object.assign(ds, config.data.datasets[i] || {}));
      if (existing.data.datasets.length !== config.data.datasets.length) existing.data.datasets = config.data.datasets;
      existing.update("none");
      return existing;
    }
    if (existing) existing.destroy();
    config.options = { responsive: true, maintainAspectRatio: false, animation: { duration: 300 }, ...config.options };
    state.charts[id] = new Chart($(id), config);
    return state.charts[id];
  }

  function syncCurrencies() {
    const select = $("currency");
    const list = currencies();
    const current = select.value;
    if ([...select.options].map((o) => o.value).join() !== list.join()) {
      select.replaceChildren(...list.map((c) => new Option(c, c)));
    }
    if (list.includes(current)) select.value = current;
    return select.value || list[0];
  }

  function render() {
    const currency = syncCurrencies();
    if (!currency) return;
    renderTiles(currency);
    renderVolume(currency);
    renderStatuses(currency);
    renderTopWallets(currency);
    renderBalances(currency);
    renderSettlements();
  }

  function renderTiles(currency) {
    const statuses = pick("statuses", currency) || { by_status: {}, failures: [] };
    const by = statuses.by_status;
    const total = Object.values(by).reduce((a, s) => a + s.count, 0);
    const failed = (by.FAILED || { count: 0 }).count;
    $("kpi-count").textContent = int(total);
    $("kpi-count-sub").textContent = `${int((by.COMPLETED || { count: 0 }).count)} completed`;
    $("kpi-volume").textContent = fmt((by.COMPLETED || { volume: "0" }).volume, currency);
    $("kpi-volume-sub").textContent = $("range").selectedOptions[0].textContent.toLowerCase();
    const rate = total ? (100 * failed) / total : 0;
    $("kpi-failures").textContent = `${rate.toFixed(1)}%`;
    $("kpi-failures").className = `value ${rate > 5 ? "bad" : "good"}`;
    $("kpi-failures-sub").textContent = `${int(failed)} failed`;
    const backlog = pick("backlog", currency);
    $("kpi-backlog").textContent = int(backlog ? backlog.count : 0);
    $("kpi-backlog-sub").textContent = backlog
      ? `${fmt(backlog.amount, currency)} · oldest ${backlog.oldest_age_s.toFixed(1)} s` : "nothing waiting";
    const run = (state.data.reconciliation || {}).run;
    $("kpi-recon").textContent = run ? run.status : "never run";
    $("kpi-recon").className = `value ${run && run.status === "COMPLETED" && !run.discrepancy_count ? "good" : run ? "bad" : ""}`;
    $("kpi-recon-sub").textContent = run
      ? `${int(run.discrepancy_count)} discrepancies · ${new Date(run.finished_at || run.created_at).toLocaleString()}` : "";
  }

  function renderVolume(currency) {
    const data = state.data.volume;
    const series = pick("volume", currency) || { points: [] };
    const labels = series.points.map((p) => label(p.t, data.bucket));
    chart("chart-volume", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { type: "bar", label: `Completed volume (${currency})`, data: series.points.map((p) => num(p.volume)),
            backgroundColor: COLORS.accentSoft, borderColor: COLORS.accent, borderWidth: 1, yAxisID: "y" },
          { type: "line", label: "Transfers", data: series.points.map((p) => p.count),
            borderColor: COLORS.line, backgroundColor: COLORS.line, pointRadius: 0, tension: 0.25, yAxisID: "y1" },
        ],
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, title: { display: true, text: currency } },
          y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "transfers" } } },
      },
    });
    chart("chart-outcomes", {
      type: "bar",
      data: {
        labels,
        datasets: ["COMPLETED", "FAILED", "CANCELLED"].map((s) => ({
          label: s, data: series.points.map((p) => p.by_status[s] || 0), backgroundColor: COLORS[s], stack: "s",
        })),
      },
      options: { interaction: { mode: "index", intersect: false }, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }

  function renderStatuses(currency) {
    const statuses = pick("statuses", currency) || { by_status: {}, failures: [] };
    const names = ["COMPLETED", "FAILED", "CANCELLED"];
    chart("chart-status", {
      type: "doughnut",
      data: { labels: names, datasets: [{ data: names.map((s) => (statuses.by_status[s] || { count: 0 }).count), backgroundColor: names.map((s) => COLORS[s]) }] },
      options: { plugins: { legend: { position: "bottom" } }, cutout: "60%" },
    });
    const failures = statuses.failures.slice(0, 8);
    show("failures-empty", failures.length === 0);
    chart("chart-failures", {
      type: "bar",
      data: { labels: failures.map((f) => f.code), datasets: [{ label: "Failed transfers", data: failures.map((f) => f.count), backgroundColor: COLORS.FAILED }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  function renderTopWallets(currency) {
    const data = state.data["top-wallets"];
    const top = (pick("top-wallets", currency) || { wallets: [] }).wallets;
    chart("chart-top", {
      type: "bar",
      data: {
        labels: top.map((w) => `${w.name || w.wallet_id.slice(0, 8)} · ${w.type}`),
        datasets: [
          { label: "Debits", data: top.map((w) => num(w.debit_volume)), backgroundColor: COLORS.FAILED, stack: "v" },
          { label: "Credits", data: top.map((w) => num(w.credit_volume)), backgroundColor: COLORS.COMPLETED, stack: "v" },
        ],
      },
      options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } } },
    });
    $("top-days").textContent = `Debits and credits of completed transfers on ${data.day} (UTC).`;
  }

  function renderBalances(currency) {
    const balances = (pick("balances", currency) || { by_type: {} }).by_type;
    const types = Object.keys(balances);
    chart("chart-balances", {
      type: "bar",
      data: { labels: types, datasets: [{ label: `Balance (${currency})`, data: types.map((t) => num(balances[t].balance)), backgroundColor: types.map((t) => COLORS.types[t] || COLORS.accent) }] },
      options: { plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: (ctx) => `${balances[types[ctx.dataIndex]].wallets} wallets` } } } },
    });
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }

  function renderSettlements() {
    const data = state.data.settlements || { positions: [], recent: [] };
    $("positions").tBodies[0].replaceChildren(...data.positions.map((p) => row([
      [p.counterparty_name], [p.currency],
      [fmt(p.balance, p.currency), `num ${num(p.balance) < 0 ? "neg" : num(p.balance) > 0 ? "pos" : ""}`],
    ])));
    show("positions-empty", data.positions.length === 0);
    $("settlements").tBodies[0].replaceChildren(...data.recent.map((s) => row([
      [new Date(s.created_at).toLocaleString()], [s.currency], [fmt(s.net_amount, s.currency), "num"], [int(s.transfer_count), "num"],
    ])));
    show("settlements-empty", data.recent.length === 0);
  }

  // ---- wallet history ------------------------------------------------------------

  const STATEMENT_PAGES = 10; // the chart and table show at most 2,000 entries; the CSV has all
  const TABLE_ROWS = 200;

  async function loadWallets() {
    const wallets = (await api("/wallets?limit=200")).data;
    $("wallet").replaceChildren(...wallets.map((w) =>
      new Option(`${w.name || w.id.slice(0, 8)} · ${w.type} · ${w.currency}`, w.id)));
  }

  function statementQuery(extra) {
    const params = new URLSearchParams(extra);
    for (const [name, id] of [["from", "wallet-from"], ["to", "wallet-to"]]) {
      if ($(id).value) params.set(name, new Date($(id).value).toISOString());
    }
    return `/wallets/${encodeURIComponent($("wallet").value)}/statement?${params}`;
  }

  async function showWallet(event) {
    if (event) event.preventDefault();
    show("wallet-error", false);
    delete document.body.dataset.walletReady;
    try {
      let page = await api(statementQuery({ limit: "200" }));
      const head = page;
      const entries = [...page.data];
      for (let n = 1; page.next_cursor && n < STATEMENT_PAGES; n++) {
        page = await api(statementQuery({ limit: "200", cursor: page.next_cursor }));
        entries.push(...page.data);
      }
      state.statement = { ...head, data: entries, truncated: Boolean(page.next_cursor) };
      renderWallet(state.statement);
      document.body.dataset.walletReady = "true";
    } catch (err) {
      if (err instanceof AuthError) { logout(err.message); return; }
      $("wallet-error").textContent = `Could not load the statement: ${err.message}`;
      show("wallet-error", true);
    }
  }

  function renderWallet(statement) {
    const currency = statement.currency;
    const points = [{ t: statement.from, balance: statement.opening_balance },
      ...statement.data.map((e) => ({ t: e.created_at, balance: e.balance_after }))];
    chart("chart-wallet", {
      type: "line",
      data: {
        labels: points.map((p) => new Date(p.t).toLocaleString()),
        datasets: [{ label: `Balance (${currency})`, data: points.map((p) => num(p.balance)), stepped: true,
          borderColor: COLORS.accent, backgroundColor: COLORS.accentSoft, fill: true, pointRadius: 2 }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { title: { display: true, text: currency } } } },
    });
    $("wallet-summary").textContent = `Opening ${fmt(statement.opening_balance, currency)} · credits `
      + `${fmt(statement.total_credits, currency)} · debits ${fmt(statement.total_debits, currency)} · `
      + `closing ${fmt(statement.closing_balance, currency)}`;
    const shown = statement.data.slice(-TABLE_ROWS).reverse();
    $("statement").tBodies[0].replaceChildren(...shown.map((e) => row([
      [new Date(e.created_at).toLocaleString()], [e.direction], [(e.transaction_id || e.settlement_id || "").slice(0, 8)],
      [`${e.direction === "DEBIT" ? "−" : "+"}${fmt(e.amount, currency)}`, `num ${e.direction === "DEBIT" ? "neg" : "pos"}`],
      [fmt(e.balance_after, currency), "num"],
    ])));
    show("statement-empty", statement.data.length === 0);
    const hidden = statement.data.length - shown.length;
    $("statement-more").textContent = statement.truncated || hidden > 0
      ? "Showing the latest entries; download the CSV for all of them." : "";
    show("statement-more", statement.truncated || hidden > 0);
  }

  async function downloadStatement() {
    show("wallet-error", false);
    try {
      const resp = await fetch(API + statementQuery({ format: "csv" }), {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/csv" },
      });
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await resp.blob());
      link.download = `statement-${$("wallet").value}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (err) {
      $("wallet-error").textContent = `Could not download the statement: ${err.message}`;
      show("wallet-error", true);
    }
  }

  // ---- wiring --------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    Chart.defaults.color = "#6b7489";
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => logout());
    $("currency").addEventListener("change", render);
    $("range").addEventListener("change", refresh);
    $("wallet-form").addEventListener("submit", showWallet);
    $("wallet-csv").addEventListener("click", downloadStatement);
    if (state.token) start(); else show("login-view", true);
  });
})();
