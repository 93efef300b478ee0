/**
 * `npm run soak [-- MINUTES]` (default 30): the shipped executable under mixed hostile load for
 * a long time, to show memory stays flat and nothing accepted is lost. Two sites, A (WAN sender,
 * registry on SQLite with 2,000 records) and B (WAN receiver), each on its own Redis, one
 * nats-server. At the same time, bounded in rate:
 *   - legitimate: 100 durable messages/s published at A, counted by an SSE subscriber at B;
 *   - poison on A's bus: unsigned and forged texts on pub/sub and on the durable stream;
 *   - junk frames on B's NATS subjects;
 *   - bad federation tokens on A's relay, and bad registry write tokens;
 *   - slow readers: SSE subscribers at A that never read;
 *   - catalog polls: GET /v1/records at A twice a second.
 * Prints one JSON line per sample (`{"soak":"sample","minute",…,"rssA","rssB"}` in KiB) and a
 * summary line; exits 1 if a message was lost or repeated, or RSS after the first third grew by
 * more than 20% (plus 16 MiB for allocator noise).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request, type ClientRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { createKeyFile } from "../../src/identity/index.ts";
import { signRecord } from "../../src/registry/proof.ts";
import { SqliteStore } from "../../src/registry/sqlite-store.ts";
import { frameSubject } from "../../src/wan/index.ts";
import { BINARY, requireBuild, rssKiB } from "../../bench/http.ts";
import { startNats } from "../helpers/nats.ts";
import { freePort, startRedis } from "../helpers/redis.ts";
import { writeSite } from "../helpers/site.ts";

const MINUTES = Number(process.argv[2] ?? process.env["SOAK_MINUTES"] ?? 30);
const SAMPLE_MS = 30_000;
const dir = mkdtempSync(join(tmpdir(), "pilox-soak-"));
const p = (...x: string[]) => join(dir, ...x);
const secret = (name: string, v: string) => writeFileSync(p(name), v, { mode: 0o600 });

function siteConfig(name: "a" | "b", o: { port: number; peerPort: number; redis: string; nats: string; peerKey: string; registry: boolean }): string {
  return writeSite({
    dir, name, port: o.port, secret: `soak-bus-secret-${name}-0123456789abcdef0123`, redis: o.redis,
    stateDir: p(`${name}-state`), logLevel: "warn",
    durable: ["a2b"],
    federation: "queue_max_bytes = 4194304",
    peer: { origin: `http://127.0.0.1:${o.peerPort}`, keys: [o.peerKey], accept: name === "b" ? ["a2b"] : [], forward: name === "a" ? ["a2b"] : [], transport: "wan" },
    wan: { natsUrls: [o.nats] },
    ...(o.registry ? { extra: `[registry]\nenabled = true\nwrite_token_file = "${p("reg.token")}"\nsync_interval_seconds = 3600\nrequire_proof = false` } : {}),
  });
}

const logs = new Map<string, string>();
function serve(cfg: string): ChildProcess {
  const c = spawn(BINARY, ["--config", cfg, "serve"], { stdio: ["ignore", "ignore", "pipe"] });
  logs.set(cfg, "");
  c.stderr!.on("data", (d: Buffer) => {
    const line = String(d).trim();
    if (logs.get(cfg)!.length < 100_000) logs.set(cfg, logs.get(cfg) + line + "\n");
    if (/level=error/.test(line)) process.stderr.write(`[${cfg}] ${line}\n`);
  });
  return c;
}

function http(target: { socketPath: string } | { port: number }, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ ...("socketPath" in target ? { socketPath: target.socketPath } : { host: "127.0.0.1", port: target.port }), method, path, headers: { "content-type": "application/json", ...headers }, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

async function waitHealthy(port: number): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if ((await http({ port }, "GET", "/readyz")) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`site on ${port} did not become ready:\n${[...logs.values()].join("\n---\n")}`);
}

/** Counts message payload numbers arriving on B's SSE stream of a2b. */
function subscribeB(socketPath: string, seen: Uint8Array): ClientRequest {
  let buf = "";
  const req = request({ socketPath, path: "/v1/bus/subscribe?channel=a2b" }, (res) => {
    res.setEncoding("utf8");
    res.on("data", (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const m = /"soakN":(\d+)/.exec(block);
        if (m) seen[Number(m[1])] = Math.min(255, seen[Number(m[1])]! + 1);
      }
    });
  });
  req.end();
  return req;
}

async function main(): Promise<void> {
  requireBuild();
  const endAt = Date.now() + MINUTES * 60_000;
  const [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  const nats = await startNats();
  const [portA, portB] = [await freePort(), await freePort()];
  const keyA = createKeyFile(p("a-id.key"));
  const keyB = createKeyFile(p("b-id.key"));
  secret("reg.token", "soak-registry-token-0123456789");
  // 2,000 records of ~4 KB in A's registry before it starts.
  {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(p("a-state"), { recursive: true, mode: 0o700 });
    const store = new SqliteStore(p("a-state", "registry.sqlite"));
    const key = createKeyFile(p("agent.key"));
    for (let i = 0; i < 2_000; i++) {
      const h = `urn:pilox:agent:soak-${i}`;
      const body = signRecord({ schema: "pilox-registry-record-v1", handle: h, updatedAt: "2026-01-01T00:00:00Z", agentCardUrl: `https://agents.example/${i}/card.json`, description: "d".repeat(4_000) } as never, key, { kid: "k", seq: 1 });
      await store.put({ handle: h, seq: 1, body, deleted: false, keys: [key.publicKeyHex], agentCardUrl: body.agentCardUrl, expiresAt: 0, etag: 'W/"s"' }, null);
    }
    await store.close();
  }
  const a = serve(siteConfig("a", { port: portA, peerPort: portB, redis: redisA.url, nats: nats.url, peerKey: keyB.publicKeyHex, registry: true }));
  const b = serve(siteConfig("b", { port: portB, peerPort: portA, redis: redisB.url, nats: nats.url, peerKey: keyA.publicKeyHex, registry: false }));
  await Promise.all([waitHealthy(portA), waitHealthy(portB)]);

  const MAX = 100 * 60 * MINUTES + 10_000;
  const seen = new Uint8Array(MAX);
  const sub = subscribeB(p("b.sock"), seen);
  await new Promise((r) => setTimeout(r, 1_000));
  const rawA = new Redis(redisA.url);
  const nc = await connect({ servers: nats.url.replace("nats://", "") });
  const stats = { published: 0, publishFailed: 0, poison: 0, junkFrames: 0, badTokens: 0, catalogPolls: 0, catalogNon200: 0, slowReaders: 0 };
  const slow: ClientRequest[] = [];
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, f: () => unknown) => timers.push(setInterval(() => void f(), ms));

  // Legitimate traffic: 10 messages every 100 ms, each accepted one remembered.
  let n = 0;
  const accepted: number[] = [];
  every(100, async () => {
    for (let i = 0; i < 10 && Date.now() < endAt; i++) {
      const k = n++;
      const st = await http({ socketPath: p("a.sock") }, "POST", "/v1/bus/publish", JSON.stringify({ channel: "a2b", message: { type: "soak", payload: { soakN: k } } }));
      if (st === 202) {
        accepted.push(k);
        stats.published++;
      } else stats.publishFailed++;
    }
  });
  // Poison on A's bus: pub/sub and the durable stream.
  every(200, async () => {
    const junk = [randomBytes(64).toString("base64"), JSON.stringify({ v: 1, meshMeta: { eventId: "x" }, meshSig: "00".repeat(32) }), "[".repeat(5_000)];
    for (const t of junk) await rawA.publish("a2b", t).catch(() => {});
    await rawA.xadd("pilox-mesh:stream:a2b", "*", "m", junk[1]!).catch(() => {});
    stats.poison += 4;
  });
  // Junk frames on B's inbox subject, as if from A and from strangers.
  const toB = [frameSubject("pilox-mesh.wan.v1", `http://127.0.0.1:${portB}`, `http://127.0.0.1:${portA}`), frameSubject("pilox-mesh.wan.v1", `http://127.0.0.1:${portB}`, "https://stranger.example")];
  every(200, () => {
    for (let i = 0; i < 5; i++) nc.publish(toB[i % 2]!, randomBytes(200 + Math.floor(Math.random() * 2_000)), { headers: undefined });
    stats.junkFrames += 5;
  });
  // Bad federation tokens and bad registry write tokens.
  every(250, async () => {
    await http({ port: portA }, "POST", "/v1/federation/relay", '{"messages":[]}', { "x-pilox-federation-jwt": `eyJhbGciOiJFZERTQSJ9.${randomBytes(40).toString("base64url")}.${randomBytes(64).toString("base64url")}` });
    await http({ port: portA }, "POST", "/v1/records", "{}", { authorization: `Bearer ${randomBytes(16).toString("hex")}` });
    stats.badTokens += 2;
  });
  // Catalog polls.
  every(500, async () => {
    const st = await http({ port: portA }, "GET", "/v1/records");
    stats.catalogPolls++;
    if (st !== 200) stats.catalogNon200++;
  });
  // Slow readers: up to 50 SSE subscribers at A that never read, renewed a few at a time.
  every(5_000, () => {
    while (slow.length >= 50) slow.shift()!.destroy();
    for (let i = 0; i < 5; i++) {
      const r = request({ socketPath: p("a.sock"), path: "/v1/bus/subscribe?channel=a2b" }, (res) => res.pause());
      r.on("error", () => {});
      r.end();
      slow.push(r);
      stats.slowReaders++;
    }
  });

  const samples: { minute: number; rssA: number; rssB: number }[] = [];
  const t0 = Date.now();
  const sample = () => {
    const s = { minute: Math.round((Date.now() - t0) / 6_000) / 10, rssA: rssKiB(a.pid!), rssB: rssKiB(b.pid!) };
    samples.push(s);
    process.stdout.write(JSON.stringify({ soak: "sample", ...s, ...stats }) + "\n");
  };
  sample();
  while (Date.now() < endAt) {
    await new Promise((r) => setTimeout(r, Math.min(SAMPLE_MS, Math.max(0, endAt - Date.now()))));
    if (a.exitCode !== null || b.exitCode !== null) throw new Error(`a site died: A ${a.exitCode}, B ${b.exitCode}`);
    sample();
  }
  for (const t of timers) clearInterval(t);
  // Drain: every accepted message reaches B once.
  const drainEnd = Date.now() + 120_000;
  const missing = () => accepted.filter((k) => seen[k] === 0).length;
  while (missing() > 0 && Date.now() < drainEnd) await new Promise((r) => setTimeout(r, 500));
  const lost = missing();
  const repeated = accepted.filter((k) => seen[k]! > 1).length;
  sample();
  // Flat: after warm-up (the first third), the later samples' maximum against the warm-up's.
  const warm = samples.filter((s) => s.minute >= MINUTES / 3);
  const ref = warm[0] ?? samples[0]!;
  const growth = (key: "rssA" | "rssB") => Math.max(...warm.map((s) => s[key])) - ref[key];
  const flat = (key: "rssA" | "rssB") => growth(key) <= ref[key] * 0.2 + 16 * 1024;
  const summary = { soak: "summary", minutes: MINUTES, accepted: accepted.length, lost, repeated, ...stats, rssAStart: samples[0]!.rssA, rssAWarm: ref.rssA, rssAMax: Math.max(...samples.map((s) => s.rssA)), rssAEnd: samples.at(-1)!.rssA, rssBStart: samples[0]!.rssB, rssBWarm: ref.rssB, rssBMax: Math.max(...samples.map((s) => s.rssB)), rssBEnd: samples.at(-1)!.rssB, flatA: flat("rssA"), flatB: flat("rssB") };
  process.stdout.write(JSON.stringify(summary) + "\n");
  sub.destroy();
  for (const r of slow) r.destroy();
  rawA.disconnect();
  await nc.close();
  for (const c of [a, b]) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 2_000));
  await Promise.all([redisA.stop(), redisB.stop(), nats.stop()]);
  rmSync(dir, { recursive: true, force: true });
  process.exit(lost === 0 && repeated === 0 && summary.flatA && summary.flatB ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`soak failed: ${(err as Error).stack}\n`);
  process.exit(2);
});
