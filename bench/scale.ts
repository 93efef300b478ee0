/**
 * scale: cost curves of the executable as what it serves grows, with no traffic unless said.
 * - peers 1 → 50 → 200 federation peers, each with a forwarder and an on-disk queue (one
 *   forwarded channel): RSS and idle CPU.
 * - SSE subscribers 1 → 1,000 → 10,000 on one channel (agent API, Unix socket, clients in
 *   their own process): RSS, memory per subscriber, then fan-out deliveries/s of a burst.
 * - durable channels 1 → 100 → 1,000 on Redis, each forwarded to a peer (one consumer per
 *   channel): idle CPU, Redis commands/s and Redis connections with no traffic.
 * Each figure's baseline is the same figure at the smallest size (ratio: its growth); per-item
 * costs are the growth divided by the items added. Sizes: SCALE_PEERS, SCALE_SSE, SCALE_DURABLE.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import { createKeyFile } from "../src/identity/index.ts";
import { freePort, startRedis, type TestRedis } from "../test/helpers/redis.ts";
import { BINARY, requireBuild, rssKiB, runtimeNode, start, stop, waitHttp } from "./http.ts";
import { cpuMeter, report } from "./lib.ts";

const sizes = (env: string, def: string) => (process.env[env] ?? def).split(",").map(Number);
const IDLE_S = Number(process.env["SCALE_IDLE_SECONDS"] ?? 5);

/** CPU ms per second of a process over `seconds` of idleness. */
async function idleCpu(pid: number, seconds: number): Promise<number> {
  const m = cpuMeter({ p: () => pid });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  // cpuMeter gives µs per "message"; counting seconds as the messages, µs per second.
  return (m.stop(seconds)["p"] ?? 0) / 1000;
}

interface Site {
  proc: ChildProcess;
  port: number;
  dir: string;
}

async function site(dir: string, toml: string): Promise<Site> {
  const port = await freePort();
  const cfg = join(dir, "pilox-mesh.toml");
  writeFileSync(cfg, `[http]\nlisten = "127.0.0.1:${port}"\n[log]\nlevel = "warn"\n${toml}`);
  const proc = start(BINARY, ["--config", cfg, "--state-dir", join(dir, "state"), "serve"]);
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  try {
    await waitHttp(port, "/readyz", 60_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}: ${err}`);
  }
  return { proc, port, dir };
}

function peersToml(dir: string, n: number, channel: string): string {
  let t = `[instance]\norigin = "http://127.0.0.1:1"\nkey_file = "${join(dir, "own.key")}"\n`;
  createKeyFile(join(dir, "own.key"));
  for (let i = 0; i < n; i++) {
    const k = createKeyFile(join(dir, `peer-${i}.key`));
    // Unreachable origins: nothing is sent with no traffic; the forwarders and queues exist.
    t += `[[federation.peers]]\norigin = "https://peer-${i}.invalid"\npublic_keys = ["${k.publicKeyHex}"]\nforward_channels = ["${channel}"]\n`;
  }
  return t;
}

async function peersCurve(root: string): Promise<void> {
  const rows: { n: number; rssMb: number; cpu: number }[] = [];
  for (const n of sizes("SCALE_PEERS", "1,50,200")) {
    const dir = join(root, `peers-${n}`);
    mkdirSync(dir, { recursive: true });
    const s = await site(dir, peersToml(dir, n, "fed"));
    await new Promise((r) => setTimeout(r, 2_000));
    const cpu = await idleCpu(s.proc.pid!, IDLE_S);
    rows.push({ n, rssMb: rssKiB(s.proc.pid!) / 1024, cpu });
    await stop(s.proc);
  }
  const first = rows[0]!;
  for (const r of rows) {
    const perPeerKb = r.n > first.n ? ((r.rssMb - first.rssMb) * 1024) / (r.n - first.n) : 0;
    report("scale.peers.rss", "MB", first.rssMb, r.rssMb, { peers: r.n, per_added_peer_kb: Math.round(perPeerKb) });
    report("scale.peers.idle_cpu", "ms/s", first.cpu, r.cpu, { peers: r.n, seconds: IDLE_S });
  }
}

/** A process holding `n` SSE subscriptions on the socket; prints "ready" then counts on demand. */
const SSE_CLIENTS = `
const http = require("node:http");
const [sock, n] = [process.argv[1], Number(process.argv[2])];
let open = 0, started = 0, events = 0;
// A hundred connects at a time: a Unix socket's listen backlog refuses a flood (EAGAIN).
const next = () => {
  if (started >= n) return;
  started++;
  http.request({ socketPath: sock, path: "/v1/bus/subscribe?channel=fan" }, (res) => {
    if (res.statusCode !== 200) { console.error("status " + res.statusCode); process.exit(1); }
    if (++open === n) console.log("ready");
    res.setEncoding("utf8");
    res.on("data", (d) => { let at = d.indexOf("event: message"); while (at >= 0) { events++; at = d.indexOf("event: message", at + 1); } });
    next();
  }).on("error", (e) => { console.error(e.message); process.exit(1); }).end();
};
for (let i = 0; i < 100; i++) next();
process.stdin.on("data", () => console.log(String(events)));
`;

async function sseCurve(root: string): Promise<void> {
  const rows: { n: number; rssMb: number; fanout: number; idleCpu: number; applianceNs: number; clientNs: number }[] = [];
  const BURST = Number(process.env["SCALE_SSE_BURST"] ?? 500_000);
  for (const n of sizes("SCALE_SSE", "1,1000,10000")) {
    const dir = join(root, `sse-${n}`);
    mkdirSync(dir, { recursive: true });
    const sock = join(dir, "api.sock");
    const s = await site(dir, `[api]\nsocket = "${sock}"\nmax_subscribers = ${Math.max(256, n)}\nsse_max_total_queued_bytes = 1073741824\n`);
    const c = spawn(runtimeNode(), ["-e", SSE_CLIENTS, sock, String(n)], { stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: c.stdout! })[Symbol.asyncIterator]();
    const ready = await lines.next();
    if (ready.value !== "ready") throw new Error(`SSE clients: ${String(ready.value)}`);
    await new Promise((r) => setTimeout(r, 2_000));
    const idle = await idleCpu(s.proc.pid!, 3);
    const rssMb = rssKiB(s.proc.pid!) / 1024;
    // Fan-out: messages × subscribers deliveries (about BURST of them), published over HTTP.
    const messages = Math.max(20, Math.min(20_000, Math.round(BURST / n)));
    const count = async () => {
      c.stdin!.write("?\n");
      return Number((await lines.next()).value);
    };
    const cpu = cpuMeter({ appliance: () => s.proc.pid, clients: () => c.pid });
    const t0 = performance.now();
    for (let i = 0; i < messages; i++) await publish(sock, { type: "fan", n: i });
    let got = 0;
    const end = Date.now() + 120_000;
    while ((got = await count()) < messages * n && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    const fanout = got / ((performance.now() - t0) / 1000);
    const cpuNs = cpu.stop(Math.max(1, got / 1000)); // µs per thousand deliveries = ns per delivery
    rows.push({ n, rssMb, fanout, idleCpu: idle, applianceNs: cpuNs["appliance"] ?? 0, clientNs: cpuNs["clients"] ?? 0 });
    c.kill();
    await stop(s.proc);
    if (got < messages * n) throw new Error(`SSE fan-out: ${got} of ${messages * n} deliveries`);
  }
  const first = rows[0]!;
  for (const r of rows) {
    const perSubKb = r.n > first.n ? ((r.rssMb - first.rssMb) * 1024) / (r.n - first.n) : 0;
    report("scale.sse.rss", "MB", first.rssMb, r.rssMb, { subscribers: r.n, per_added_subscriber_kb: Math.round(perSubKb * 10) / 10 });
    report("scale.sse.idle_cpu", "ms/s", first.idleCpu, r.idleCpu, { subscribers: r.n });
    report("scale.sse.fanout", "deliveries/s", first.fanout, r.fanout, { subscribers: r.n, cpu_us_per_delivery: { appliance: r.applianceNs / 1000, clients: r.clientNs / 1000 } });
  }
}

function publish(sock: string, message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    import("node:http").then(({ request }) => {
      const req = request({ socketPath: sock, method: "POST", path: "/v1/bus/publish", headers: { "content-type": "application/json" } }, (res) => {
        res.resume();
        res.on("end", () => (res.statusCode === 202 ? resolve() : reject(new Error(`publish → ${res.statusCode}`))));
      });
      req.on("error", reject);
      req.end(JSON.stringify({ channel: "fan", message }));
    }, reject);
  });
}

async function commandsProcessed(r: Redis): Promise<{ commands: number; clients: number }> {
  const info = await r.info();
  const num = (k: string) => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? 0);
  return { commands: num("total_commands_processed"), clients: num("connected_clients") };
}

async function durableCurve(root: string): Promise<void> {
  const rows: { n: number; cpu: number; cmdsPerS: number; clients: number; rssMb: number }[] = [];
  let redis: TestRedis | undefined;
  try {
    redis = await startRedis({ aof: true });
    const probe = new Redis(redis.url);
    for (const n of sizes("SCALE_DURABLE", "1,100,1000")) {
      await probe.flushall();
      const dir = join(root, `durable-${n}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "bus.secret"), "scale-bench-bus-secret-0123456789abcdef", { mode: 0o600 });
      let toml = `[bus]\nbackend = "redis"\n[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${join(dir, "bus.secret")}"\n`;
      const names = Array.from({ length: n }, (_, i) => `d${i}`);
      for (const name of names) toml += `[[bus.channels]]\nname = "${name}"\ndurable = true\n`;
      createKeyFile(join(dir, "own.key"));
      const peer = createKeyFile(join(dir, "peer.key"));
      toml += `[instance]\norigin = "http://127.0.0.1:1"\nkey_file = "${join(dir, "own.key")}"\n[[federation.peers]]\norigin = "https://peer.invalid"\npublic_keys = ["${peer.publicKeyHex}"]\nforward_channels = [${names.map((x) => `"${x}"`).join(",")}]\n`;
      const s = await site(dir, toml);
      await new Promise((r) => setTimeout(r, 3_000));
      const before = await commandsProcessed(probe);
      const t0 = performance.now();
      const cpu = await idleCpu(s.proc.pid!, IDLE_S);
      const after = await commandsProcessed(probe);
      // Our probe's own two INFO commands are not the appliance's.
      const cmdsPerS = (after.commands - before.commands - 1) / ((performance.now() - t0) / 1000);
      rows.push({ n, cpu, cmdsPerS, clients: after.clients - 1, rssMb: rssKiB(s.proc.pid!) / 1024 });
      await stop(s.proc);
    }
    probe.disconnect();
  } finally {
    await redis?.stop();
  }
  const first = rows[0]!;
  for (const r of rows) {
    report("scale.durable.idle_cpu", "ms/s", first.cpu, r.cpu, { channels: r.n, seconds: IDLE_S });
    report("scale.durable.redis_commands", "commands/s", first.cmdsPerS, r.cmdsPerS, { channels: r.n, idle: true });
    report("scale.durable.redis_connections", "connections", first.clients, r.clients, { channels: r.n });
    report("scale.durable.rss", "MB", first.rssMb, r.rssMb, { channels: r.n });
  }
}

export async function run(): Promise<void> {
  requireBuild();
  const root = mkdtempSync(join(tmpdir(), "pilox-bench-scale-"));
  try {
    const only = (process.env["SCALE_CURVES"] ?? "peers,sse,durable").split(",");
    if (only.includes("peers")) await peersCurve(root);
    if (only.includes("sse")) await sseCurve(root);
    if (only.includes("durable")) await durableCurve(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
