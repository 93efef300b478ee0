/**
 * The status page (`[http] status_page = true`): `GET /` serves one self-contained HTML page (no
 * external asset; a strict Content-Security-Policy that allows only its own inline script and
 * style, by hash, and fetches to this origin), which draws this site, its roles and each peer
 * with its transport, link state, queue depth and age, and a small SVG of the topology, refreshed
 * every 2 s from `GET /v1/status-page.json`. Behind `http.metrics_token_file` when that is set.
 */
import { createHash } from "node:crypto";
import type { Hono, MiddlewareHandler } from "hono";

export const STATUS_PAGE_JSON = "/v1/status-page.json";

export interface StatusPageData {
  origin: string;
  node: string;
  version: string;
  roles: string[];
  ready: boolean;
  peers: { origin: string; transport: string; up: boolean | null; queue: number; oldestAgeSeconds: number | null; lastContact: string | null }[];
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.3rem;margin:0 0 .2rem}
.muted{color:#667}
table{border-collapse:collapse;margin-top:1rem;background:#fff}
td,th{padding:.35rem .7rem;border-bottom:1px solid #e3e6ea;text-align:left}
.up{color:#17803d;font-weight:600}.down{color:#c0262d;font-weight:600}.idle{color:#667}
svg{background:#fff;border:1px solid #e3e6ea;margin-top:1rem}
`;

const SCRIPT = `
"use strict";
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function stateOf(p) { return p.up === true ? "up" : p.up === false ? "down" : "idle"; }
const COLOR = { up: "#17803d", down: "#c0262d", idle: "#8a93a0" };
function render(d) {
  document.getElementById("site").textContent = d.origin;
  document.getElementById("meta").textContent = d.node + " · " + d.version + " · roles: " + d.roles.join(", ") + " · " + (d.ready ? "ready" : "NOT READY");
  const tbody = document.getElementById("peers");
  tbody.replaceChildren();
  for (const p of d.peers) {
    const tr = document.createElement("tr");
    tr.dataset.peer = p.origin;
    tr.dataset.state = stateOf(p);
    const cells = [p.origin, p.transport, stateOf(p), String(p.queue), p.oldestAgeSeconds === null ? "-" : p.oldestAgeSeconds + " s", p.lastContact || "never"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 2) td.className = stateOf(p);
      tr.append(td);
    });
    tbody.append(tr);
  }
  const svg = document.getElementById("topology");
  svg.replaceChildren();
  const cx = 200, cy = 150, r = 110, n = d.peers.length;
  d.peers.forEach((p, i) => {
    const a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    const x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
    svg.append(el("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: COLOR[stateOf(p)], "stroke-width": 3, "data-peer": p.origin }));
    svg.append(el("circle", { cx: x, cy: y, r: 10, fill: COLOR[stateOf(p)] }));
    svg.append(el("text", { x: x, y: y + 24, "text-anchor": "middle", "font-size": 10 }, new URL(p.origin).host + " (" + p.transport + ")"));
  });
  svg.append(el("circle", { cx: cx, cy: cy, r: 16, fill: d.ready ? "#2450a6" : "#c0262d" }));
  svg.append(el("text", { x: cx, y: cy + 32, "text-anchor": "middle", "font-size": 11 }, new URL(d.origin).host));
  document.getElementById("updated").textContent = "updated " + new Date().toISOString();
}
async function refresh() {
  try {
    const r = await fetch("${STATUS_PAGE_JSON}", { cache: "no-store", credentials: "same-origin" });
    if (r.ok) render(await r.json());
    else document.getElementById("updated").textContent = "status answered " + r.status;
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the appliance";
  }
}
refresh();
setInterval(refresh, 2000);
`;

const hash = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;

/** Only this page's own inline script and style, fetches to this origin, nothing else. */
export const STATUS_PAGE_CSP = `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>pilox-mesh status</title><style>${STYLE}</style></head>
<body>
<h1 id="site">pilox-mesh</h1>
<div class="muted" id="meta"></div>
<svg id="topology" width="400" height="300" viewBox="0 0 400 300" role="img" aria-label="this site and its peers"></svg>
<table><thead><tr><th>peer</th><th>transport</th><th>link</th><th>queued</th><th>oldest</th><th>last contact</th></tr></thead><tbody id="peers"></tbody></table>
<p class="muted" id="updated"></p>
<script>${SCRIPT}</script>
</body></html>
`;

/** GET / and its JSON on the public listener, behind `auth` (the metrics token) when given. */
export function mountStatusPage(app: Hono<any>, o: { data: () => Promise<StatusPageData>; auth: MiddlewareHandler }): void {
  app.get("/", o.auth, (c) => {
    c.header("Content-Security-Policy", STATUS_PAGE_CSP);
    c.header("Cache-Control", "no-store");
    return c.html(HTML);
  });
  app.get(STATUS_PAGE_JSON, o.auth, async (c) => {
    c.header("Cache-Control", "no-store");
    return c.json(await o.data());
  });
}
