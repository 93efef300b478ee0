/**
 * registry.sync: what converging costs. Registry B pulls 10,000 records (BENCH_SYNC_RECORDS) from
 * registry A, then 100 changed ones, through our change feed; the baseline is the reference's
 * way, measured the same way in the same run: the catalog, then one GET per handle, every
 * interval. Requests and response bytes for both, and the wall time of each.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile, keyFromSeedHex } from "../src/identity/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { signRecord } from "../src/registry/proof.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { freePort } from "../test/helpers/redis.ts";
import { report } from "./lib.ts";

const N = Number(process.env["BENCH_SYNC_RECORDS"] ?? 10_000);
const CHANGES = 100;
const TOKEN = "bench-registry-token-0123456789";
const owner = keyFromSeedHex("43".repeat(32));
const rec = (i: number, seq: number, at: string) =>
  signRecord({ schema: "pilox-registry-record-v1", handle: `urn:pilox:agent:sync:${String(i).padStart(6, "0")}`, updatedAt: at, agentCardUrl: `https://agents.example/${i}/card.json`, capabilities: ["a2a-jsonrpc"] } as RegistryRecord, owner, { kid: "k1", seq });

/** Counts the requests and response bytes `f` makes through fetch. */
async function counted(f: () => Promise<unknown>): Promise<{ requests: number; bytes: number; ms: number }> {
  const real = globalThis.fetch;
  let requests = 0;
  let bytes = 0;
  globalThis.fetch = (async (...args: Parameters<typeof fetch>) => {
    requests++;
    const res = await real(...args);
    const buf = Buffer.from(await res.arrayBuffer());
    bytes += buf.length;
    return new Response(buf, { status: res.status, headers: res.headers });
  }) as typeof fetch;
  const t0 = performance.now();
  try {
    await f();
  } finally {
    globalThis.fetch = real;
  }
  return { requests, bytes, ms: performance.now() - t0 };
}

/** The reference's pull: GET /v1/records, then GET each handle. */
async function fullDownload(url: string): Promise<void> {
  const cat = (await (await fetch(`${url}/v1/records`)).json()) as { handles: string[] };
  for (let i = 0; i < cat.handles.length; i += 16) {
    await Promise.all(cat.handles.slice(i, i + 16).map(async (h) => (await fetch(`${url}/v1/records/${encodeURIComponent(h)}`)).text()));
  }
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-sync-"));
  writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
  const [pa, pb] = [await freePort(), await freePort()];
  const ka = createKeyFile(join(dir, "a.key"));
  createKeyFile(join(dir, "b.key"));
  const conf = (name: string, port: number, peers: string) => {
    const f = join(dir, `${name}.toml`);
    writeFileSync(f, `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${join(dir, `${name}.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, `${name}.sock`)}"\n[registry]\nenabled = true\nwrite_token_file = "${join(dir, "token")}"\nsync_interval_seconds = 86400\n${peers}`);
    return f;
  };
  const A = await Appliance.start({ load: { path: conf("a", pa, ""), stateDir: join(dir, "a-state") }, log: silentLogger });
  const B = await Appliance.start({ load: { path: conf("b", pb, `[[registry.peers]]\nurl = "http://127.0.0.1:${pa}"\ncatalog_public_keys = ["${ka.publicKeyHex}"]\n`), stateDir: join(dir, "b-state") }, log: silentLogger });
  const urlA = `http://127.0.0.1:${pa}`;
  const post = (r: RegistryRecord) => fetch(`${urlA}/v1/records`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(r) }).then((x) => x.text());
  try {
    for (let i = 0; i < N; i += 32) await Promise.all(Array.from({ length: Math.min(32, N - i) }, (_, j) => post(rec(i + j, 1, "2026-11-01T00:00:00Z"))));
    const oursInitial = await counted(() => B.registry!.syncNow());
    const refInitial = await counted(() => fullDownload(urlA));
    for (let i = 0; i < CHANGES; i++) await post(rec(i * Math.floor(N / CHANGES), 2, "2026-11-02T00:00:00Z"));
    const oursDelta = await counted(() => B.registry!.syncNow());
    const refDelta = await counted(() => fullDownload(urlA));
    const converged = (await (await fetch(`http://127.0.0.1:${pb}/v1/records`)).json()) as { catalogProofV2: { digest: string } };
    const source = (await (await fetch(`${urlA}/v1/records`)).json()) as { catalogProofV2: { digest: string } };
    const same = converged.catalogProofV2.digest === source.catalogProofV2.digest;
    for (const [phase, ours, ref] of [["initial", oursInitial, refInitial], [`after_${CHANGES}_changes`, oursDelta, refDelta]] as const) {
      report(`registry.sync.${phase}.requests`, "requests", ref.requests, ours.requests, { records: N, baseline_is: "the reference: catalog + one GET per handle" });
      report(`registry.sync.${phase}.bytes`, "bytes", ref.bytes, ours.bytes, { records: N });
      report(`registry.sync.${phase}.time`, "ms", ref.ms, ours.ms, { records: N, converged: same, note: "ours verifies and merges each record; the baseline only downloads" });
    }
  } finally {
    await Promise.all([A.stop(200), B.stop(200)]);
    rmSync(dir, { recursive: true, force: true });
  }
}
