// Transfers explorer: find transfers by id, idempotency key, status, wallet or day; open one to see its
// entries, events and webhook deliveries; cancel it while PENDING. Uses the dashboard's signed-in `api`.
// Everything from the API is shown through textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function query() {
    const params = new URLSearchParams({ limit: "20" });
    if ($("explore-status").value) params.set("status", $("explore-status").value);
    if ($("explore-wallet").value.trim()) params.set("wallet_id", $("explore-wallet").value.trim());
    if ($("explore-key").value.trim()) params.set("idempotency_key", $("explore-key").value.trim());
    if ($("explore-day").value) {
      const day = new Date(`${$("explore-day").value}T00:00:00Z`);
      params.set("from", day.toISOString());
      params.set("to", new Date(day.getTime() + 86400000).toISOString());
    }
    return params;
  }

  async function search(event) {
    if (event) event.preventDefault();
    const api = window.dashboardApi;
    $("explore-error").hidden = true;
    try {
      const id = $("explore-id").value.trim();
      const found = id ? [await api(`/transactions/${encodeURIComponent(id)}`)]
        : (await api(`/transactions?${query()}`)).data;
      const body = $("explore-results").tBodies[0];
      body.replaceChildren();
      for (const t of found) {
        const row = body.insertRow();
        row.dataset.id = t.id;
        row.className = "clickable";
        cell(row, new Date(t.created_at).toLocaleString());
        cell(row, t.id);
        cell(row, t.idempotency_key || "");
        cell(row, t.status, `status-${t.status}`);
        cell(row, `${t.amount} ${t.currency}`, "num");
        row.addEventListener("click", () => open(t.id));
      }
      $("explore-empty").hidden = found.length > 0;
    } catch (err) {
      $("explore-error").textContent = err.message;
      $("explore-error").hidden = false;
    }
  }

  async function open(id) {
    const api = window.dashboardApi;
    const [transfer, ledger, events] = await Promise.all([
      api(`/transactions/${id}`),
      api(`/transactions/${id}/ledger`),
      api(`/events?resource_id=${id}`).catch(() => ({ data: [] })),
    ]);
    const deliveries = await deliveriesOf(events.data);
    $("detail-title").textContent = `${transfer.id} · ${transfer.status}`;
    $("detail-title").dataset.status = transfer.status;
    $("detail-cancel").hidden = transfer.status !== "PENDING";
    $("detail-cancel").onclick = () => cancel(id);
    const entries = $("detail-entries").tBodies[0];
    entries.replaceChildren();
    for (const e of ledger.data) {
      const row = entries.insertRow();
      cell(row, e.wallet_id);
      cell(row, e.direction);
      cell(row, e.amount, "num");
      cell(row, e.balance_after, "num");
    }
    const list = $("detail-events");
    list.replaceChildren();
    for (const ev of events.data) {
      const item = document.createElement("li");
      item.textContent = `${new Date(ev.created_at).toLocaleString()} · ${ev.type} · ${ev.id}`;
      list.appendChild(item);
    }
    showDeliveries(deliveries);
    $("explore-detail").hidden = false;
  }

  // A transfer's deliveries: each endpoint's deliveries of each of the transfer's events
  // (`GET /webhooks/{id}/deliveries?event_id=`). Events and endpoints are few per transfer;
  // a member, who may not read webhooks, sees none.
  async function deliveriesOf(events) {
    if (!events.length) return [];
    const api = window.dashboardApi;
    try {
      const hooks = (await api("/webhooks?limit=100")).data;
      const pages = await Promise.all(hooks.flatMap((hook) => events.map((ev) =>
        api(`/webhooks/${hook.id}/deliveries?event_id=${ev.id}&limit=100`)
          .then((page) => page.data.map((d) => ({ ...d, url: hook.url }))))));
      return pages.flat().sort((a, b) => a.created_at.localeCompare(b.created_at));
    } catch (err) {
      return [];
    }
  }

  function showDeliveries(deliveries) {
    const body = $("detail-deliveries").tBodies[0];
    body.replaceChildren();
    for (const d of deliveries) {
      const row = body.insertRow();
      row.dataset.status = d.status;
      cell(row, d.event_type);
      cell(row, d.url);
      cell(row, d.status, `status-${d.status}`);
      cell(row, String(d.attempt_count), "num");
      cell(row, d.last_status_code != null ? String(d.last_status_code) : (d.last_error || ""));
      cell(row, d.next_attempt_at ? new Date(d.next_attempt_at).toLocaleString() : "");
    }
    $("detail-deliveries-empty").hidden = deliveries.length > 0;
  }

  async function cancel(id) {
    try {
      await window.dashboardApi(`/transactions/${id}/cancel`, { method: "POST" });
    } catch (err) {
      $("explore-error").textContent = err.message;
      $("explore-error").hidden = false;
    }
    await open(id);
    await search();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("explorer-form").addEventListener("submit", search);
  });
})();
