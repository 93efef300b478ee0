/**
 * resolve: handle resolutions per second through a registry (an appliance) and a signed
 * descriptor, cold (every step fetched and verified) and cached (the ResolveCache), measured in
 * the same run. Baseline: one plain GET of the record from the registry, the floor a cold
 * resolution cannot go under.
 */
import { createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../src/daemon/appliance.ts";
import { signDocument } from "../src/discovery/index.ts";
import { keyFromSeedHex } from "../src/identity/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { signRecord } from "../src/registry/proof.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { resolveHandle, ResolveCache } from "../src/resolve/index.ts";
import { freePort } from "../test/helpers/redis.ts";
import { report } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 1_000);
const TOKEN = "bench-registry-token-0123456789";

export async function run(): Promise<void> {
  const key = keyFromSeedHex("61".repeat(32));
  const docSrv = createServer((_q, r) => r.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=120" }).end(body));
  await new Promise<void>((r) => docSrv.listen(0, "127.0.0.1", r));
  const docUrl = `http://127.0.0.1:${(docSrv.address() as { port: number }).port}`;
  const body = JSON.stringify(signDocument({ schema: "pilox-mesh-descriptor-v1", instanceOrigin: docUrl, a2a: { jsonRpcUrl: `${docUrl}/rpc` }, instanceKeys: { current: { publicKeyHex: key.publicKeyHex }, next: null }, federation: { localEd25519PublicKeyHex: key.publicKeyHex } }, key));
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-resolve-"));
  writeFileSync(join(dir, "token"), TOKEN, { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(dir, "r.toml"), `[instance]\norigin = "http://127.0.0.1:${port}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, "api.sock")}"\n[registry]\nenabled = true\nwrite_token_file = "${join(dir, "token")}"\n`);
  const app = await Appliance.start({ load: { path: join(dir, "r.toml"), stateDir: join(dir, "state") }, log: silentLogger });
  const url = `http://127.0.0.1:${port}`;
  try {
    const handle = "urn:pilox:agent:bench:resolve-1";
    const rec = signRecord({ schema: "pilox-registry-record-v1", handle, updatedAt: "2026-11-01T00:00:00Z", agentCardUrl: `${docUrl}/card.json`, meshDescriptorUrl: `${docUrl}/doc.json`, ttlSecondsRecommended: 3600 } as RegistryRecord, key, { kid: "k1", seq: 1 });
    await fetch(`${url}/v1/records`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(rec) });
    const o = { registries: [url], allowPrivate: true };
    const time = async (f: () => Promise<unknown>) => {
      for (let i = 0; i < 50; i++) await f();
      const t0 = performance.now();
      for (let i = 0; i < N; i++) await f();
      return N / ((performance.now() - t0) / 1000);
    };
    const floor = await time(async () => (await fetch(`${url}/v1/records/${encodeURIComponent(handle)}`)).text());
    const cold = await time(async () => {
      const r = await resolveHandle(handle, o);
      if (!r.ok) throw new Error(r.reason);
    });
    const cache = new ResolveCache();
    const cached = await time(() => cache.resolve(handle, o));
    report("resolve.cold", "resolutions/s", floor, cold, { baseline_is: "one plain GET of the record (fetch): a cold resolution also verifies two proofs, fetches and verifies the descriptor", n: N });
    report("resolve.cached", "resolutions/s", cold, cached, { baseline_is: "cold resolution", n: N });
  } finally {
    await app.stop(200);
    docSrv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
