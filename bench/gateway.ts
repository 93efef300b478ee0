/**
 * gateway.proxy: JSON-RPC requests/s through the gateway (bundle on the embedded Node 24)
 * against a minimal node:http proxy to the same upstream (target ≥ 0.8), and the latency each
 * adds over calling the upstream directly (p50/p99). gateway.stream: time to first byte and the
 * delay added per SSE event, through the gateway against a direct connection. Interleaved
 * rounds, best round reported.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/helpers/redis.ts";
import { readStream, startUpstream } from "../test/helpers/upstream.ts";
import { BUNDLE_ARGV, requireBuild, runtimeNode, start, stop, waitHttp } from "./http.ts";
import { percentile, report, reportRounds, interleaved } from "./lib.ts";

const CONNECTIONS = 32;
const ROUND_MS = Number(process.env["BENCH_MS"] ?? 2_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5);
const BODY = JSON.stringify({ jsonrpc: "2.0", method: "tasks/get", params: { id: "t-1" }, id: 1 });

/** A minimal keep-alive proxy: what "just forward it" costs on node:http. */
const proxyScript = (port: number, upstreamPort: number) => `
const http = require("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
http.createServer((q, r) => {
  const u = http.request({ host: "127.0.0.1", port: ${upstreamPort}, path: "/api/a2a/jsonrpc/public", method: "POST", headers: q.headers, agent }, (ur) => { r.writeHead(ur.statusCode, ur.headers); ur.pipe(r); });
  u.on("error", () => { r.writeHead(502); r.end(); });
  q.pipe(u);
}).listen(${port}, "127.0.0.1", () => process.stderr.write("ready\\n"));`;

function post(port: number, path: string, agent: Agent, body = BODY): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: "127.0.0.1", port, path, method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function rate(port: number, path: string): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let n = 0;
  const end = Date.now() + ROUND_MS;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < end) {
      await post(port, path, agent);
      n++;
    }
  }));
  agent.destroy();
  return n / ((performance.now() - t0) / 1000);
}

async function latencies(port: number, path: string, n = 2_000): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await post(port, path, agent));
  agent.destroy();
  return out.sort((a, b) => a - b);
}

/** Time to the first event and the mean lag per event of one SSE stream. */
async function stream(port: number, path: string): Promise<{ ttfb: number; lag: number }> {
  const r = await readStream(port, path, JSON.stringify({ jsonrpc: "2.0", method: "message/stream", id: 1 }));
  return { ttfb: r.firstByteMs, lag: r.events.reduce((a, e) => a + e.lagMs, 0) / Math.max(1, r.events.length) };
}

export async function run(): Promise<void> {
  requireBuild();
  const node = runtimeNode();
  const up = await startUpstream();
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-gw-"));
  const port = await freePort();
  const cfg = join(dir, "g.toml");
  writeFileSync(cfg, `[api]\nsocket = "${join(dir, "api.sock")}"\n[log]\nlevel = "warn"\n[gateway]\nenabled = true\nupstream_url = "${up.url}"\nrate_per_second = 1000000\nburst = 1000000\nmax_concurrent = 1024\n`);
  const gw = start(node, [...BUNDLE_ARGV, "--config", cfg, "--state-dir", join(dir, "state"), "serve", "--listen", `127.0.0.1:${port}`]);
  const pport = await freePort();
  const px = start(node, ["-e", proxyScript(pport, up.port)]);
  try {
    await waitHttp(port);
    await new Promise((r) => setTimeout(r, 300));
    await rate(port, "/v1/a2a/jsonrpc");
    await rate(pport, "/");
    const rounds = await interleaved(ROUNDS, () => rate(pport, "/"), () => rate(port, "/v1/a2a/jsonrpc"));
    reportRounds("gateway.proxy", "req/s", rounds, { baseline_is: "a minimal node:http keep-alive proxy to the same upstream", connections: CONNECTIONS, rounds: ROUNDS, target_ratio: 0.8 });
    const direct = await latencies(up.port, "/api/a2a/jsonrpc/public");
    const viaProxy = await latencies(pport, "/");
    const viaGw = await latencies(port, "/v1/a2a/jsonrpc");
    for (const p of [50, 99]) {
      report(`gateway.proxy.added_latency_p${p}`, "ms", percentile(viaProxy, p) - percentile(direct, p), percentile(viaGw, p) - percentile(direct, p), { baseline_is: "what the minimal proxy adds over a direct call", direct_ms: percentile(direct, p), samples: direct.length });
    }
    const d = await stream(up.port, "/");
    const g = await stream(port, "/v1/a2a/jsonrpc");
    report("gateway.stream.ttfb", "ms", d.ttfb, g.ttfb, { baseline_is: "a direct connection to the upstream (its first event is sent after 100 ms)" });
    report("gateway.stream.event_lag", "ms", d.lag, g.lag, { baseline_is: "a direct connection", events: 5 });
  } finally {
    await stop(gw);
    await stop(px);
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
