// podns dashboard: plain JavaScript, no build step, no dependencies.
//
// Data flow: one Informer per resource does what a Kubernetes informer does: list, then watch
// from the list's resourceVersion over a streaming fetch (newline-delimited JSON events), resume
// from the last resourceVersion seen when the stream ends or breaks, and relist on 410 Gone.
// Browsers open at most 6 HTTP/1.1 connections to one host, so five resources are watched (pods,
// endpointslices, services, statefulsets, Warning events) and the slow-changing rest (namespaces,
// nodes, DNS metrics) is polled over the sixth. Watches pause while the tab is hidden, so a
// second tab does not starve the first. Everything is rendered from the informers' caches.
"use strict";

const TOKEN_KEY = "podns.dashboard.token";
const POLL_MS = 5000;           // namespaces, nodes, DNS metrics
const DNS_HISTORY = 60;         // rate samples kept for the sparkline (5 minutes at POLL_MS)
const MAX_BACKOFF_MS = 10000;
const EVENTS_PER_POD = 3;

const $ = (id) => document.getElementById(id);
const state = { informers: {}, namespaces: [], nodes: [], dns: { last: null, history: [], error: "" },
                nsFilter: "", running: false, pollTimer: null, renderQueued: false };

// ---------------------------------------------------------------------------------------------
// HTTP

class Unauthorized extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(path, signal) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
                                   signal, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized("the API server rejected the token (401)");
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try { const body = await resp.json(); if (body.message) msg = body.message; } catch (e) { /* not JSON */ }
    const err = new Error(msg);
    err.code = resp.status;
    throw err;
  }
  return resp;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

// ---------------------------------------------------------------------------------------------
// Informer: list + watch + local cache

class Informer {
  constructor(name, path, query) {
    this.name = name;
    this.path = path;
    this.query = query || "";
    this.items = new Map();     // "ns/name" -> object
    this.rv = "";               // last resourceVersion seen; "" means: list first
    this.status = "connecting";
    this.error = "";
    this.abort = null;
  }

  url(extra) {
    const q = [this.query, extra].filter(Boolean).join("&");
    return this.path + (q ? "?" + q : "");
  }

  start() {
    this.abort = new AbortController();
    this.run(this.abort.signal);
  }

  stop() { if (this.abort) this.abort.abort(); this.abort = null; }

  async run(signal) {
    let backoff = 500;
    while (!signal.aborted) {
      try {
        if (!this.rv) await this.list(signal);
        await this.watch(signal);       // returns when the stream ends; resume from this.rv
        backoff = 500;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof Unauthorized) { logout(err.message); return; }
        if (err.code === 410) this.rv = "";
        this.setStatus("down", err.message || String(err));
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async list(signal) {
    this.setStatus("connecting", "");
    const body = await (await api(this.url(""), signal)).json();
    this.items = new Map((body.items || []).map((o) => [key(o), o]));
    this.rv = body.metadata.resourceVersion;
    scheduleRender();
  }

  async watch(signal) {
    const resp = await api(this.url("watch=1&allowWatchBookmarks=true&resourceVersion="
                                    + encodeURIComponent(this.rv)), signal);
    this.setStatus("live", "");
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.apply(JSON.parse(line));
        }
      }
    } finally {
      // an ERROR event or a bad line leaves the stream open: close it, or it holds one of the
      // browser's six connections to this host
      reader.cancel().catch(() => {});
    }
  }

  apply(ev) {
    const obj = ev.object || {};
    if (ev.type === "ERROR") {
      const err = new Error(obj.message || "watch error");
      err.code = obj.code;
      throw err;                // 410: run() relists
    }
    if (obj.metadata && obj.metadata.resourceVersion) this.rv = obj.metadata.resourceVersion;
    if (ev.type === "BOOKMARK") return;
    if (ev.type === "DELETED") this.items.delete(key(obj));
    else this.items.set(key(obj), obj);
    scheduleRender();
  }

  setStatus(status, error) {
    this.status = status;
    this.error = error;
    renderConn();
  }
}

function key(o) { return (o.metadata.namespace || "") + "/" + o.metadata.name; }

// ---------------------------------------------------------------------------------------------
// Polling: namespaces, nodes, DNS metrics

async function poll() {
  if (!state.running) return;
  try {
    const [ns, nodes] = await Promise.all([
      api("/api/v1/namespaces").then((r) => r.json()),
      api("/api/v1/nodes").then((r) => r.json()),
    ]);
    state.namespaces = ns.items || [];
    state.nodes = nodes.items || [];
    await pollDns();
    scheduleRender();
  } catch (err) {
    if (err instanceof Unauthorized) { logout(err.message); return; }
  }
  if (state.running) state.pollTimer = setTimeout(poll, POLL_MS);
}

async function pollDns() {
  const d = state.dns;
  try {
    const body = await (await api("/ui/dns-metrics")).json();
    const cur = summarizeDns(body);
    if (d.last && cur.time > d.last.time) {
      const dt = cur.time - d.last.time;
      cur.rate = Math.max(0, (cur.requests - d.last.requests) / dt);
      cur.rateByType = rates(cur.byType, d.last.byType, dt);
      cur.rateByRcode = rates(cur.byRcode, d.last.byRcode, dt);
      d.history.push(cur.rate);
      if (d.history.length > DNS_HISTORY) d.history.shift();
    }
    d.last = cur;
    d.error = "";
  } catch (err) {
    if (err instanceof Unauthorized) throw err;
    d.error = err.message || String(err);
  }
}

function summarizeDns(body) {
  const out = { time: body.time, url: body.url, requests: 0, byType: {}, byRcode: {}, gauges: {} };
  for (const s of body.samples) {
    if (s.name.endsWith("_dns_requests_total")) {
      out.requests += s.value;
      const t = s.labels.type || "other";
      out.byType[t] = (out.byType[t] || 0) + s.value;
    } else if (s.name.endsWith("_dns_responses_total")) {
      const r = s.labels.rcode || "other";
      out.byRcode[r] = (out.byRcode[r] || 0) + s.value;
    } else if (!s.name.endsWith("_sum") && !s.name.endsWith("_count") && Object.keys(s.labels).length === 0) {
      out.gauges[s.name] = s.value;
    }
  }
  return out;
}

function rates(cur, prev, dt) {
  const out = {};
  for (const [k, v] of Object.entries(cur)) out[k] = Math.max(0, (v - (prev[k] || 0)) / dt);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const badge = (cls, text, title) =>
  `<span class="badge ${cls}"${title ? ` title="${esc(title)}"` : ""}>${esc(text)}</span>`;
const items = (name) => [...(state.informers[name] ? state.informers[name].items.values() : [])];
const inNs = (o) => !state.nsFilter || o.metadata.namespace === state.nsFilter;
const byName = (a, b) => key(a).localeCompare(key(b), undefined, { numeric: true });

function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 90) return s + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  setTimeout(() => { state.renderQueued = false; render(); }, 50);
}

function render() {
  if (!state.running) return;
  renderNamespaces();
  renderServices();
  renderStatefulSets();
  renderNodes();
  renderDns();
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function renderConn() {
  const infs = Object.values(state.informers);
  const el = $("conn");
  const down = infs.filter((i) => i.status === "down");
  const live = infs.length > 0 && infs.every((i) => i.status === "live");
  el.className = "conn " + (down.length ? "down" : live ? "live" : "connecting");
  el.textContent = down.length ? "reconnecting" : live ? "live" : "connecting";
  el.title = down.map((i) => i.name + ": " + i.error).join("\n") || "watching " + infs.map((i) => i.name).join(", ");
}

function renderNamespaces() {
  const pods = items("pods");
  const chips = state.namespaces.slice().sort(byName).map((ns) => {
    const name = ns.metadata.name;
    const n = pods.filter((p) => p.metadata.namespace === name).length;
    const phase = (ns.status || {}).phase || "Active";
    return `<button type="button" class="chip${state.nsFilter === name ? " selected" : ""}" data-ns="${esc(name)}">`
      + `${esc(name)} <span class="muted">${n} pod${n === 1 ? "" : "s"}</span>`
      + (phase !== "Active" ? " " + badge("warn", phase) : "") + "</button>";
  });
  $("ns-list").innerHTML = chips.join("") || '<span class="muted">none</span>';
  const sel = $("ns-filter");
  const want = ["", ...state.namespaces.map((n) => n.metadata.name).sort()];
  const have = [...sel.options].map((o) => o.value);
  if (want.join("\n") !== have.join("\n")) {
    sel.innerHTML = want.map((n) => `<option value="${esc(n)}">${n ? esc(n) : "all namespaces"}</option>`).join("");
    sel.value = state.nsFilter;
  }
}

function endpointConditions(ep) {
  const c = ep.conditions || {};
  // EndpointSlice API: ready/serving unset means "unknown", to be read as ready; terminating unset: false
  const ready = c.ready !== false, serving = c.serving !== undefined ? c.serving !== false : ready;
  return { ready, serving, terminating: c.terminating === true };
}

function renderServices() {
  const slices = items("endpointslices");
  const svcs = items("services").filter(inNs).sort(byName);
  const html = svcs.map((svc) => {
    const ns = svc.metadata.namespace, name = svc.metadata.name, spec = svc.spec || {};
    const mine = slices.filter((s) => s.metadata.namespace === ns
      && (s.metadata.labels || {})["kubernetes.io/service-name"] === name);
    const eps = [];
    for (const s of mine) for (const ep of s.endpoints || []) eps.push(ep);
    eps.sort((a, b) => String(a.hostname || a.addresses[0]).localeCompare(String(b.hostname || b.addresses[0]),
      undefined, { numeric: true }));
    const nready = eps.filter((e) => endpointConditions(e).ready).length;
    const headless = spec.clusterIP === "None";
    const ports = (spec.ports || []).map((p) => `${p.name ? p.name + " " : ""}${p.port}/${p.protocol || "TCP"}`).join(", ");
    const rows = eps.map((ep) => {
      const c = endpointConditions(ep);
      const who = ep.hostname || (ep.targetRef ? ep.targetRef.name : "");
      return `<tr data-endpoint="${esc(ns + "/" + name + "/" + (who || ep.addresses[0]))}" data-ready="${c.ready}">`
        + `<td>${esc(who)}</td><td class="mono">${esc((ep.addresses || []).join(", "))}</td>`
        + `<td>${c.ready ? badge("ok", "ready") : badge("bad", "not ready")}`
        + `${c.serving ? badge("ok", "serving") : badge("off", "not serving")}`
        + `${c.terminating ? badge("warn", "terminating") : ""}</td>`
        + `<td class="muted">${esc(ep.nodeName || "")}</td></tr>`;
    }).join("");
    const summaryCls = eps.length === 0 ? "off" : nready === eps.length ? "ok" : nready === 0 ? "bad" : "warn";
    return `<div class="svc" data-svc="${esc(ns + "/" + name)}" data-ready-count="${nready}" data-endpoint-count="${eps.length}">`
      + `<h3>${esc(name)} <span class="muted">${esc(ns)}</span> `
      + (headless ? badge("info", "headless") : badge("off", spec.clusterIP || spec.type || ""))
      + badge(summaryCls, `${nready}/${eps.length} ready`) + `</h3>`
      + `<div class="muted">${esc(ports)}${spec.selector ? " &middot; selector " + esc(Object.entries(spec.selector).map(([k, v]) => k + "=" + v).join(",")) : ""}</div>`
      + (rows ? `<table><thead><tr><th>hostname</th><th>IP</th><th>conditions</th><th>node</th></tr></thead><tbody>${rows}</tbody></table>`
        : '<p class="muted">no endpoints</p>')
      + `</div>`;
  });
  $("svc-list").innerHTML = html.join("") || '<p class="muted">no services</p>';
}

function podState(pod) {
  // -> [css class, short text, longer explanation]
  const st = pod.status || {};
  if (pod.metadata.deletionTimestamp) return ["warn", "Terminating", "deleting since " + pod.metadata.deletionTimestamp];
  for (const cs of st.containerStatuses || []) {
    const w = (cs.state || {}).waiting;
    if (w && w.reason && w.reason !== "ContainerCreating") return ["bad", w.reason, w.message || ""];
  }
  if (st.phase === "Failed") return ["bad", "Failed", st.message || ""];
  if (st.phase === "Succeeded") return ["off", "Completed", ""];
  if (st.phase !== "Running") return ["warn", st.phase || "Pending", st.message || ""];
  const ready = (st.conditions || []).find((c) => c.type === "Ready");
  if (ready && ready.status === "True") return ["ok", "Ready", ""];
  return ["bad", "NotReady", ready ? (ready.message || ready.reason || "") : ""];
}

function renderStatefulSets() {
  const pods = items("pods");
  const html = items("statefulsets").filter(inNs).sort(byName).map((sts) => {
    const ns = sts.metadata.namespace, name = sts.metadata.name;
    const spec = sts.spec || {}, st = sts.status || {};
    const want = spec.replicas == null ? 1 : spec.replicas;
    const re = new RegExp("^" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "-(\\d+)$");
    const owned = new Map();
    for (const p of pods) {
      if (p.metadata.namespace !== ns) continue;
      const owner = (p.metadata.ownerReferences || []).find((r) => r.kind === "StatefulSet");
      const m = p.metadata.name.match(re);
      if (m && (!owner || owner.uid === sts.metadata.uid)) owned.set(Number(m[1]), p);
    }
    const start = (spec.ordinals && spec.ordinals.start) || 0;
    const ords = new Set([...owned.keys()]);
    for (let i = start; i < start + want; i++) ords.add(i);
    const cells = [...ords].sort((a, b) => a - b).map((i) => {
      const p = owned.get(i);
      if (!p) return `<div class="ordinal missing" data-ordinal="${i}"><b>${esc(name)}-${i}</b>not created</div>`;
      const [cls, text, why] = podState(p);
      return `<div class="ordinal ${cls}" data-ordinal="${i}" title="${esc(why)}"><b>${esc(p.metadata.name)}</b>`
        + `${esc(text)} <span class="mono muted">${esc((p.status || {}).podIP || "")}</span></div>`;
    }).join("");
    return `<h3>${esc(name)} <span class="muted">${esc(ns)}</span> `
      + badge((st.readyReplicas || 0) === want ? "ok" : "warn", `${st.readyReplicas || 0}/${want} ready`)
      + `</h3><div class="muted">service ${esc(spec.serviceName || "")} &middot; ${esc(spec.podManagementPolicy || "OrderedReady")}`
      + ` &middot; ${esc(((spec.updateStrategy || {}).type) || "RollingUpdate")}</div>`
      + `<div class="ordinals">${cells}</div>`;
  });
  $("sts-list").innerHTML = html.join("") || '<p class="muted">no StatefulSets</p>';
}

function probeSummary(p) {
  if (!p) return "";
  let what = "";
  if (p.tcpSocket) what = "tcp :" + p.tcpSocket.port;
  else if (p.httpGet) what = "http " + (p.httpGet.path || "/") + " :" + p.httpGet.port;
  else if (p.exec) what = "exec " + (p.exec.command || []).join(" ");
  else if (p.grpc) what = "grpc :" + p.grpc.port;
  return what + " every " + (p.periodSeconds || 10) + "s";
}

function containerState(cs) {
  const s = cs.state || {};
  if (s.running) return badge("ok", "running", "since " + s.running.startedAt);
  if (s.waiting) return badge("warn", s.waiting.reason || "waiting", s.waiting.message);
  if (s.terminated) return badge("bad", s.terminated.reason || "terminated", "exit code " + s.terminated.exitCode);
  return badge("off", "unknown");
}

function renderPod(pod, events) {
  const st = pod.status || {};
  const [cls, text, why] = podState(pod);
  const conds = (st.conditions || []).map((c) =>
    badge(c.status === "True" ? "ok" : "bad", c.type, (c.reason || "") + " " + (c.message || ""))).join("");
  const specs = new Map(((pod.spec || {}).containers || []).map((c) => [c.name, c]));
  const ctrs = (st.containerStatuses || []).map((cs) => {
    const c = specs.get(cs.name) || {};
    const probes = [["readiness", c.readinessProbe], ["liveness", c.livenessProbe], ["startup", c.startupProbe]]
      .filter(([, p]) => p).map(([k, p]) => `${k}: ${probeSummary(p)}`).join("; ");
    return `<div><span class="mono">${esc(cs.name)}</span> ${containerState(cs)}`
      + `${cs.ready ? badge("ok", "ready") : badge("bad", "not ready")}`
      + `${cs.restartCount ? badge("warn", cs.restartCount + " restarts") : ""}`
      + (probes ? ` <span class="muted">${esc(probes)}</span>` : "") + `</div>`;
  }).join("");
  const evs = events.slice(0, EVENTS_PER_POD).map((e) =>
    `<li>${esc(e.reason)}: ${esc(e.message)} <span class="muted">(${e.count > 1 ? "x" + e.count + ", " : ""}`
    + `${esc(ago(e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp))})</span></li>`).join("");
  return `<tr data-pod="${esc(key(pod))}" data-state="${esc(text)}"><td><b>${esc(pod.metadata.name)}</b>`
    + `<div class="muted">${esc(pod.metadata.namespace)}</div></td>`
    + `<td class="mono">${esc(st.podIP || "")}</td>`
    + `<td>${badge(cls, text, why)}</td><td>${conds}</td>`
    // warnings from before the pod became ready again are history, not its present state
    + `<td>${ctrs}${evs ? `<ul class="events${cls === "ok" ? " old" : ""}">${evs}</ul>` : ""}</td></tr>`;
}

function renderNodes() {
  const pods = items("pods").filter(inNs).sort(byName);
  const events = new Map();
  for (const e of items("events")) {
    const io = e.involvedObject || {};
    if (io.kind !== "Pod") continue;
    const k = (io.namespace || e.metadata.namespace) + "/" + io.name;
    if (!events.has(k)) events.set(k, []);
    events.get(k).push(e);
  }
  const stamp = (e) => Date.parse(e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp) || 0;
  for (const list of events.values()) list.sort((a, b) => stamp(b) - stamp(a));
  const groups = new Map(state.nodes.map((n) => [n.metadata.name, []]));
  for (const p of pods) {
    const n = (p.spec || {}).nodeName || "";
    if (!groups.has(n)) groups.set(n, []);
    groups.get(n).push(p);
  }
  const nodeObj = new Map(state.nodes.map((n) => [n.metadata.name, n]));
  const html = [...groups.entries()].sort(([a], [b]) => (a || "~").localeCompare(b || "~")).map(([name, list]) => {
    const node = nodeObj.get(name);
    let head;
    if (!name) head = `<h3>not scheduled</h3>`;
    else {
      const ready = node && ((node.status || {}).conditions || []).find((c) => c.type === "Ready");
      const ok = ready && ready.status === "True";
      const addr = node ? ((node.status || {}).addresses || []).map((a) => a.address).join(", ") : "";
      head = `<h3>${esc(name)} ${badge(ok ? "ok" : "bad", ok ? "Ready" : "NotReady", ready ? ready.message : "")}`
        + ` <span class="muted mono">${esc(addr)}</span> <span class="muted">${list.length} pods</span></h3>`;
    }
    const rows = list.map((p) => renderPod(p, events.get(key(p)) || [])).join("");
    return `<div class="node" data-node="${esc(name)}">${head}`
      + (rows ? `<table><thead><tr><th>pod</th><th>IP</th><th>state</th><th>conditions</th><th>containers, probes, recent warnings</th></tr></thead><tbody>${rows}</tbody></table>`
        : '<p class="muted">no pods</p>') + `</div>`;
  });
  $("node-list").innerHTML = html.join("") || '<p class="muted">no nodes</p>';
}

function sparkline(values) {
  if (values.length < 3) return "";
  const max = Math.max(1, ...values), w = 240, h = 36;
  const pts = values.map((v, i) => `${(i * w / (DNS_HISTORY - 1)).toFixed(1)},${(h - 2 - v / max * (h - 4)).toFixed(1)}`);
  return `<svg class="spark" viewBox="0 0 ${w} ${h}" role="img" aria-label="queries per second">`
    + `<polyline points="${pts.join(" ")}"/></svg>`;
}

function renderDns() {
  const d = state.dns, cur = d.last;
  if (!cur) {
    $("dns-body").innerHTML = d.error ? `<p class="muted">${esc(d.error)}</p>` : '<p class="muted">waiting for metrics...</p>';
    return;
  }
  const fmt = (v) => v == null ? "-" : v < 10 ? v.toFixed(1) : Math.round(v).toString();
  const g = (suffix) => { const k = Object.keys(cur.gauges).find((n) => n.endsWith(suffix)); return k ? cur.gauges[k] : null; };
  const synced = g("_dns_synced");
  const stats = [
    ["queries/s", fmt(cur.rate)], ["queries total", Math.round(cur.requests)],
    ["records", g("_dns_records")], ["services", g("_dns_services")],
    ["endpointslices", g("_dns_endpointslices")], ["forwarded", g("_dns_forwarded_total")],
  ].filter(([, v]) => v != null).map(([k, v]) => `<div class="stat"><b data-dns="${esc(k)}">${esc(v)}</b><span class="muted">${esc(k)}</span></div>`);
  const table = (title, rate) => {
    const rows = Object.entries(rate || {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${fmt(v)}/s</td></tr>`).join("");
    return rows ? `<table><thead><tr><th>${esc(title)}</th><th>rate</th></tr></thead><tbody>${rows}</tbody></table>` : "";
  };
  const spark = sparkline(d.history);
  $("dns-body").innerHTML = `<div class="stats">${stats.join("")}`
    + (spark ? `<div>${spark}<div class="muted">queries/s, last ${Math.round(DNS_HISTORY * POLL_MS / 60000)} min</div></div>` : "")
    + `</div>`
    + (synced === 0 ? `<p class="error">not synced with the API yet: cluster names answer SERVFAIL</p>` : "")
    + `<div class="dns-tables">${table("query type", cur.rateByType)}${table("rcode", cur.rateByRcode)}</div>`
    + (d.error ? `<p class="error">${esc(d.error)}</p>` : "")
    + `<p class="muted">from ${esc(cur.url)}</p>`;
}

// ---------------------------------------------------------------------------------------------
// Session

function startAll() {
  state.running = true;
  const defs = [
    ["pods", "/api/v1/pods"],
    ["endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"],
    ["services", "/api/v1/services"],
    ["statefulsets", "/apis/apps/v1/statefulsets"],
    ["events", "/api/v1/events", "fieldSelector=" + encodeURIComponent("type=Warning")],
  ];
  for (const [name, path, query] of defs) {
    if (!state.informers[name]) state.informers[name] = new Informer(name, path, query);
    state.informers[name].start();
  }
  renderConn();
  poll();
}

function stopAll() {
  state.running = false;
  clearTimeout(state.pollTimer);
  for (const inf of Object.values(state.informers)) inf.stop();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("ns-filter-label").hidden = false;
  startAll();
}

function logout(message) {
  stopAll();
  state.informers = {};
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("ns-filter-label").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("conn").className = "conn";
  $("conn").textContent = "";
}

async function login(ev) {
  ev.preventDefault();
  const t = $("token").value.trim();
  $("login-error").textContent = "";
  sessionStorage.setItem(TOKEN_KEY, t);
  try {
    await api("/api/v1/namespaces?limit=1");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = err instanceof Unauthorized
      ? "The API server rejected this token. Copy it from the data dir's kubeconfig-readonly." : "Login failed: " + err.message;
    return;
  }
  $("token").value = "";
  showApp();
}

function init() {
  $("server").textContent = location.host;
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("ns-filter").addEventListener("change", (e) => { state.nsFilter = e.target.value; render(); });
  $("ns-list").addEventListener("click", (e) => {
    const chip = e.target.closest("[data-ns]");
    if (!chip) return;
    state.nsFilter = state.nsFilter === chip.dataset.ns ? "" : chip.dataset.ns;
    $("ns-filter").value = state.nsFilter;
    render();
  });
  document.addEventListener("visibilitychange", () => {
    if (!token()) return;
    if (document.hidden && state.running) stopAll();
    else if (!document.hidden && !state.running) startAll();
  });
  setInterval(() => { if (state.running) render(); }, 30000);  // keep "Ns ago" true
  if (token()) showApp(); else logout("");
}

document.addEventListener("DOMContentLoaded", init);
