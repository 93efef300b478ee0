/**
 * registry.get: GET /v1/records/{handle} from the appliance's registry role (bundle on the
 * embedded Node 24), against a bare node:http server answering the same stored JSON; keep-alive
 * load from this process, interleaved rounds, best of each (target ratio ≥ 0.7). Then the
 * embedded store alone at scale: 1,000,000 records (BENCH_RECORDS) in SQLite, p50/p99 of random
 * primary-key lookups through the store (baseline: the same lookups through a bare prepared
 * statement), and the store's size on disk.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { keyFromSeedHex } from "../src/identity/index.ts";
import { signRecord } from "../src/registry/proof.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { SqliteStore } from "../src/registry/sqlite-store.ts";
import { freePort } from "../test/helpers/redis.ts";
import { BUNDLE_ARGV, requireBuild, runtimeNode, start, stop, versusBare, waitHttp } from "./http.ts";
import { percentile, report, reportRounds } from "./lib.ts";

const CONNECTIONS = 32;
const ROUND_MS = Number(process.env["BENCH_MS"] ?? 2_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5);
const RECORDS = Number(process.env["BENCH_RECORDS"] ?? 1_000_000);
const TOKEN = "bench-registry-token-0123456789";
const key = keyFromSeedHex("42".repeat(32));

const rec = (i: number): RegistryRecord =>
  signRecord(
    {
      schema: "pilox-registry-record-v1",
      handle: `urn:pilox:agent:bench:${String(i).padStart(7, "0")}`,
      updatedAt: "2026-11-01T00:00:00Z",
      agentCardUrl: `https://agents.example/${i}/card.json`,
      meshDescriptorUrl: `https://agents.example/.well-known/pilox-mesh.json`,
      capabilities: ["a2a-jsonrpc"],
      ttlSecondsRecommended: 300,
    } as RegistryRecord,
    key,
    { kid: "k1", seq: 1 },
  );

function httpCall(port: number, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers: body ? { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, "content-length": Buffer.byteLength(body) } : {} }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function http(): Promise<void> {
  requireBuild();
  const node = runtimeNode();
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-reg-"));
  writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
  const port = await freePort();
  const cfg = join(dir, "r.toml");
  writeFileSync(cfg, `[instance]\norigin = "http://127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, "api.sock")}"\n[log]\nlevel = "warn"\n[registry]\nenabled = true\nwrite_token_file = "${join(dir, "token")}"\n`);
  const mesh = start(node, [...BUNDLE_ARGV, "--config", cfg, "--state-dir", join(dir, "state"), "serve", "--listen", `127.0.0.1:${port}`]);
  try {
    await waitHttp(port);
    for (let i = 0; i < 1_000; i++) {
      const r = await httpCall(port, "POST", "/v1/records", JSON.stringify(rec(i)));
      if (r.status !== 201) throw new Error(`POST ${r.status} ${r.body}`);
    }
    const path = `/v1/records/${encodeURIComponent(rec(500).handle)}`;
    const body = (await httpCall(port, "GET", path)).body;
    const r = await versusBare(node, port, path, body, { rounds: ROUNDS, roundMs: ROUND_MS, connections: CONNECTIONS });
    reportRounds("registry.get", "req/s", r, { baseline_is: "bare node:http answering the same stored JSON", rounds: ROUNDS, connections: CONNECTIONS, bytes: Buffer.byteLength(body), target_ratio: 0.7 });
  } finally {
    await stop(mesh);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scale(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-store-"));
  const file = join(dir, "registry.sqlite");
  try {
    const store = new SqliteStore(file);
    await store.close();
    // Fill it in one transaction with the store's own schema (a million POSTs would measure
    // the signing, not the store). One signed record body, handles and cursors varied.
    const sample = rec(0);
    const db = new DatabaseSync(file);
    const ins = db.prepare("INSERT INTO records (handle, seq, body, deleted, keys, agent_card_url, expires_at, cursor, etag, valid_until, ttl) VALUES (?, 1, ?, 0, ?, ?, 0, ?, ?, 0, 300)");
    db.exec("BEGIN");
    for (let i = 0; i < RECORDS; i++) {
      const h = `urn:pilox:agent:bench:${String(i).padStart(7, "0")}`;
      ins.run(h, JSON.stringify({ ...sample, handle: h }), `["${key.publicKeyHex}"]`, `https://agents.example/${i}/card.json`, i + 1, `W/"${i.toString(16).padStart(32, "0")}"`);
    }
    db.exec("COMMIT");
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const bare = db.prepare("SELECT * FROM records WHERE handle = ?");
    const s2 = new SqliteStore(file);
    const SAMPLES = 100_000;
    const handles = Array.from({ length: SAMPLES }, () => `urn:pilox:agent:bench:${String(Math.floor(Math.random() * RECORDS)).padStart(7, "0")}`);
    const time = async (f: (h: string) => unknown) => {
      const t: number[] = [];
      for (const h of handles) {
        const t0 = performance.now();
        await f(h);
        t.push(performance.now() - t0);
      }
      return t.sort((a, b) => a - b);
    };
    const tb = await time((h) => bare.get(h));
    const ts = await time((h) => s2.served(h));
    const size = statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);
    report("registry.get.store_p50", "ms", percentile(tb, 50), percentile(ts, 50), { records: RECORDS, samples: SAMPLES, baseline_is: "the same row through a bare prepared statement", value_is: "store.served(), what GET /v1/records/{handle} reads" });
    report("registry.get.store_p99", "ms", percentile(tb, 99), percentile(ts, 99), { records: RECORDS, samples: SAMPLES });
    report("registry.get.store_size", "MiB", (RECORDS * Buffer.byteLength(JSON.stringify(sample))) / 1048576, size / 1048576, { records: RECORDS, baseline_is: "the record bodies' bytes alone", bytes_per_record: Math.round(size / RECORDS) });
    db.close();
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  await http();
  await scale();
}
