/**
 * The registry role: the store, the reference's API on the public listener, every hijack
 * refused by the right rule, three registries syncing in a ring, and the reference's own
 * client behaviour (catalog, then one GET per handle; its v1 verifier) against what we serve.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile, keyFromSeedHex, type Ed25519Key } from "../src/identity/index.ts";
import { SqliteStore } from "../src/registry/sqlite-store.ts";
import { PgStore } from "../src/registry/pg-store.ts";
import type { RecordStore } from "../src/registry/store.ts";
import { pgCtl, startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { signRecord, verifyProofV1 } from "../src/registry/proof.ts";
import { verifyCatalog } from "../src/registry/catalog.ts";
import { signTombstone } from "../src/registry/rules.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { cli } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
after(() => s.cleanup());
const TOKEN = "registry-write-token-0123456789";
s.write("token", TOKEN);
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const owner = keyFromSeedHex("11".repeat(32));
const thief = keyFromSeedHex("22".repeat(32));
const owner2 = keyFromSeedHex("33".repeat(32));

function record(handle: string, updatedAt: string, extra: Record<string, unknown> = {}): RegistryRecord {
  return { schema: "pilox-registry-record-v1", handle, updatedAt, agentCardUrl: `https://agents.example/${encodeURIComponent(handle)}/card.json`, ...extra } as RegistryRecord;
}
const signed = (r: RegistryRecord, key: Ed25519Key, seq: number, kid = "k1") => signRecord(r, key, { kid, seq });
const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace(/\.\d+Z$/, "Z");

interface Reg {
  app: Appliance;
  port: number;
  url: string;
  key: Ed25519Key;
}

async function registry(name: string, peers: { url: string; key: string; prefixes?: string[] }[] = [], extra = ""): Promise<Reg> {
  const port = await freePort();
  const key = createKeyFile(s.path(`${name}-id.key`));
  const cfg = s.write(
    `${name}.toml`,
    `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path(`${name}-id.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path(`${name}.sock`)}"\n` +
      `[registry]\nenabled = true\nwrite_token_file = "${s.path("token")}"\nsync_interval_seconds = 3600\n${extra}` +
      peers.map((p) => `[[registry.peers]]\nurl = "${p.url}"\ncatalog_public_keys = ["${p.key}"]\nprefixes = [${(p.prefixes ?? []).map((x) => `"${x}"`).join(", ")}]\n`).join(""),
  );
  const app = await startAppliance(cfg, s.path(`${name}-state`));
  return { app, port, url: `http://127.0.0.1:${port}`, key };
}

const post = (r: Reg, rec: unknown, headers: Record<string, string> = auth) => http({ port: r.port }, "POST", "/v1/records", JSON.stringify(rec), headers);
const get = (r: Reg, handle: string, headers: Record<string, string> = {}) => http({ port: r.port }, "GET", `/v1/records/${encodeURIComponent(handle)}`, undefined, headers);

/** One store interface, one suite, run against both stores. */
for (const kind of ["sqlite", "postgres"] as const) {
  describe(`the ${kind} store`, { timeout: 60_000 }, () => {
    let st: RecordStore;
    let pg: TestPostgres | undefined;
    before(async () => {
      if (kind === "sqlite") st = new SqliteStore(s.path("unit.sqlite"));
      else {
        pg = await startPostgres();
        st = new PgStore({ url: pg.url });
      }
    });
    after(async () => {
      await st.close();
      await pg?.stop();
    });

    it("writes conditionally, feeds changes in order, purges expired tombstones", async () => {
      const base = { seq: 1, body: record("urn:test:store-1", iso(0), { ttlSecondsRecommended: 30, validUntil: "2099-01-01T00:00:00Z" }), deleted: false, keys: [], agentCardUrl: "https://a.example/c", expiresAt: 0, etag: 'W/"e1"' };
      const a = await st.put({ ...base, handle: "urn:test:store-1" }, null);
      assert.notEqual(a, "conflict");
      assert.equal(await st.put({ ...base, handle: "urn:test:store-1" }, null), "conflict", "exists already");
      const cur = (a as { cursor: number }).cursor;
      const b = await st.put({ ...base, handle: "urn:test:store-1", seq: 2 }, cur);
      assert.notEqual(b, "conflict");
      assert.equal(await st.put({ ...base, handle: "urn:test:store-1", seq: 3 }, cur), "conflict", "a stale expectation loses");
      await st.put({ ...base, handle: "urn:test:store-2", deleted: true, expiresAt: 1 }, null);
      assert.deepEqual((await st.changes(0, { limit: 10, maxBytes: 1 << 20 })).map((e) => [e.handle, e.seq]), [["urn:test:store-1", 2], ["urn:test:store-2", 1]]);
      assert.deepEqual(await st.handles(), ["urn:test:store-1"]);
      assert.deepEqual(await st.byAgentCard("https://a.example/c"), ["urn:test:store-1"]);
      assert.equal(await st.count(), 1);
      assert.equal(await st.purge(Date.now()), 1);
      assert.equal((await st.get("urn:test:store-1"))?.seq, 2);
      const served = await st.served("urn:test:store-1");
      assert.deepEqual({ ...served, text: JSON.parse(served!.text).handle }, { text: "urn:test:store-1", etag: 'W/"e1"', deleted: false, validUntil: Date.parse("2099-01-01T00:00:00Z"), ttl: 30 });
    });

    if (kind === "sqlite") {
      it("the writes of one turn commit together: each resolves once committed, a conflict among them undoes only itself", async () => {
        const other = new DatabaseSync(s.path("unit.sqlite"), { readOnly: true });
        const seen = (h: string) => other.prepare("SELECT count(*) AS n FROM records WHERE handle = ?").get(h) as { n: number };
        const base = { seq: 1, body: record("urn:test:group-0", iso(0)), deleted: false, keys: [], agentCardUrl: "", expiresAt: 0, etag: 'W/"g"' };
        const writes = Array.from({ length: 20 }, (_, i) => st.put({ ...base, handle: `urn:test:group-${i}` }, null));
        const clash = st.put({ ...base, handle: "urn:test:store-1" }, null); // exists: a conflict in the same transaction
        // Written in this turn, not committed yet: another connection does not see them.
        assert.equal(seen("urn:test:group-0").n, 0);
        const done = await Promise.all(writes);
        assert.equal(await clash, "conflict");
        assert.ok(done.every((d) => d !== "conflict"));
        for (let i = 0; i < 20; i++) assert.equal(seen(`urn:test:group-${i}`).n, 1, `group-${i} committed before its put resolved`);
        other.close();
      });
    }

    it("concurrent conditional writes of one version: exactly one wins", async () => {
      const cur = (await st.get("urn:test:store-1"))!;
      const tries = await Promise.all(Array.from({ length: 8 }, (_, i) => st.put({ ...cur, seq: 10 + i }, cur.cursor)));
      assert.equal(tries.filter((t) => t !== "conflict").length, 1);
    });
  });
}

describe("the registry API (the reference's paths, statuses and codes)", { timeout: 60_000 }, () => {
  let A: Reg;
  before(async () => {
    A = await registry("api");
  });
  after(() => A.app.stop(200));

  it("health, POST with the write token, GET with weak ETag and 304, resolve, catalog", async () => {
    const h = (await http({ port: A.port }, "GET", "/v1/health")).json;
    assert.equal(h.ok, true);
    assert.equal(h.writeEnabled, true);
    const rec = signed(record("urn:pilox:agent:api/one", iso(60_000), { ttlSecondsRecommended: 120 }), owner, 1);
    assert.equal((await post(A, rec, { "content-type": "application/json" })).status, 401);
    const r = await post(A, rec);
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.ok, true);
    assert.match(r.json.etag, /^W\/"[0-9a-f]{32}"$/);
    const g = await get(A, rec.handle);
    assert.equal(g.status, 200);
    assert.equal(g.headers["etag"], r.json.etag);
    assert.equal(g.headers["cache-control"], "public, max-age=120");
    assert.equal(g.json.proof.registrar.origin, A.url, "countersigned by us");
    assert.equal((await http({ port: A.port }, "GET", "/v1/records/urn:pilox:agent:api/one")).status, 200, "a handle with / works unencoded");
    assert.equal((await get(A, rec.handle, { "if-none-match": `"other", ${r.json.etag.toUpperCase()}` })).status, 304);
    assert.deepEqual((await http({ port: A.port }, "GET", `/v1/resolve?agentCardUrl=${encodeURIComponent(rec.agentCardUrl)}`)).json, { handles: [rec.handle] });
    assert.equal((await http({ port: A.port }, "GET", "/v1/resolve")).status, 400);
    const cat = (await http({ port: A.port }, "GET", "/v1/records")).json;
    assert.deepEqual(cat.handles, [rec.handle]);
    const v = verifyCatalog(cat, { publicKeyHex: A.key.publicKeyHex, maxAgeSeconds: 60 });
    assert.ok(v.ok && v.v2, JSON.stringify(v));
    const viaCli = await cli(["registry", "verify-catalog", "--public-key", A.key.publicKeyHex, "--max-age", "60"], { stdin: JSON.stringify(cat) });
    assert.equal(viaCli.stdout.trim(), "valid");
  });

  it("410 once validUntil passed; 412 on a stale If-Match; 400 with instancePath; validate answers 200", async () => {
    const old = signed(record("urn:pilox:agent:api-expired", iso(60_000), { validUntil: iso(1_000) }), owner, 1);
    assert.equal((await post(A, old)).status, 201);
    assert.equal((await get(A, old.handle)).status, 410);
    const v1 = signed(record("urn:pilox:agent:api-ifmatch", iso(60_000)), owner, 1);
    const first = await post(A, v1);
    const v2 = signed(record("urn:pilox:agent:api-ifmatch", iso(30_000)), owner, 2);
    assert.equal((await post(A, v2, { ...auth, "if-match": 'W/"00000000000000000000000000000000"' })).status, 412);
    assert.equal((await post(A, v2, { ...auth, "if-match": first.json.etag })).status, 201);
    const bad = await post(A, { ...record("urn:pilox:agent:api-bad", iso(0)), extra: 1 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error, "invalid_record");
    const val = await http({ port: A.port }, "POST", "/v1/records/validate", JSON.stringify(signed(record("urn:pilox:agent:api-val", iso(0)), owner, 1)), auth);
    assert.equal(val.status, 200);
    assert.equal(val.json.wouldAcceptWrite, true);
  });

  it("deletes: signed by the handle's key (no token), or the operator's (token); the change feed shows tombstones", async () => {
    const rec = signed(record("urn:pilox:agent:api-del", iso(60_000)), owner, 5);
    assert.equal((await post(A, rec)).status, 201);
    const forged = signTombstone(rec.handle, 6, thief);
    const body = JSON.stringify(forged);
    // (Node's client frames a DELETE body only with an explicit length.)
    const fr = await http({ port: A.port }, "DELETE", `/v1/records/${encodeURIComponent(rec.handle)}`, body, { "content-length": String(Buffer.byteLength(body)) });
    assert.equal(fr.status, 409, fr.body);
    assert.match(fr.json.reason, /not_signed_by_bound_key/);
    const keyFile = s.write("owner.key", "11".repeat(32) + "\n");
    const d = await cli(["registry", "delete", A.url, rec.handle, "--key-file", keyFile]);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.equal((await get(A, rec.handle)).status, 404);
    const feed = (await http({ port: A.port }, "GET", "/v1/records?since=0&limit=1000")).json;
    const last = feed.changes.find((c: { handle: string }) => c.handle === rec.handle);
    assert.equal(last.deleted, true);
    assert.equal(last.tombstone.seq, 6);
    const op = signed(record("urn:pilox:agent:api-opdel", iso(60_000)), owner, 1);
    assert.equal((await post(A, op)).status, 201);
    const del = await cli(["registry", "delete", A.url, op.handle, "--token-file", s.path("token")]);
    assert.equal(del.code, 0, del.stdout);
    assert.equal((await http({ port: A.port }, "DELETE", `/v1/records/${encodeURIComponent("urn:pilox:agent:nothing-here")}`, undefined, auth)).status, 404);
  });

  it("the CLI publishes and gets", async () => {
    const rec = signed(record("urn:pilox:agent:api-cli", iso(60_000)), owner, 1);
    const p = await cli(["registry", "publish", A.url, "--token-file", s.path("token")], { stdin: JSON.stringify(rec) });
    assert.equal(p.code, 0, p.stdout);
    const g = await cli(["registry", "get", A.url, rec.handle]);
    assert.equal(g.code, 0);
    assert.equal(JSON.parse(g.stdout).handle, rec.handle);
  });

  it("hijacks are refused, each by its rule", async () => {
    const h = "urn:pilox:agent:api-hijack";
    assert.equal((await post(A, signed(record(h, iso(120_000)), owner, 10))).status, 201);
    const cases: [string, unknown, number, RegExp][] = [
      ["a future updatedAt", signed(record(h, new Date(Date.now() + 3_600_000).toISOString()), owner, 11), 409, /updatedAt_in_future/],
      ["a lower seq", signed(record(h, iso(60_000)), owner, 9), 409, /stale_seq/],
      ["a new key not signed by the bound one", signed(record(h, iso(60_000)), thief, 11), 409, /not_signed_by_bound_key/],
      ["an unsigned record over a signed one", record(h, iso(60_000)), 403, /proof_required/],
    ];
    for (const [what, rec, status, reason] of cases) {
      const r = await post(A, rec);
      assert.equal(r.status, status, `${what}: ${r.body}`);
      assert.match(r.json.reason, reason, what);
    }
    // Rotation: a version signed by the bound key that names the new key; then the new key signs.
    const rot = signRecord({ ...record(h, iso(50_000)), publicKeys: { ed25519: [{ kid: "k2", publicKeyHex: owner2.publicKeyHex }, { kid: "k1", publicKeyHex: owner.publicKeyHex }] } } as RegistryRecord, owner, { kid: "k1", seq: 11 });
    assert.equal((await post(A, rot)).status, 201);
    const after = signRecord({ ...record(h, iso(40_000)), publicKeys: { ed25519: [{ kid: "k2", publicKeyHex: owner2.publicKeyHex }] } } as RegistryRecord, owner2, { kid: "k2", seq: 12 });
    assert.equal((await post(A, after)).status, 201, "the new key speaks for the handle");
    assert.equal((await post(A, signed(record(h, iso(30_000)), owner, 13))).status, 409, "the old key no longer does");
  });
});

describe("registry.verify_origin", { timeout: 60_000 }, () => {
  it("the record's origin must list its signing key; private targets only when allowed", async () => {
    const agent = await registry("origin-agent"); // any appliance: it serves its signed discovery document
    const strict = await registry("origin-strict", [], "verify_origin = true\n");
    const lan = await registry("origin-lan", [], "verify_origin = true\norigin_allow_private = true\n");
    try {
      const mk = (h: string, key: Ed25519Key) => signed(record(h, iso(60_000), { meshDescriptorUrl: `${agent.url}/.well-known/pilox-mesh.json` }), key, 1);
      const good = await post(lan, mk("urn:pilox:agent:origin-good", agent.key));
      assert.equal(good.status, 201, good.body);
      const other = await post(lan, mk("urn:pilox:agent:origin-other", owner));
      assert.equal(other.status, 409);
      assert.match(other.json.reason, /^origin_does_not_list_key/);
      const gone = await post(lan, signed(record("urn:pilox:agent:origin-gone", iso(60_000), { meshDescriptorUrl: `http://127.0.0.1:${await freePort()}/x` }), owner, 1));
      assert.match(gone.json.reason, /^origin_unreachable/);
      const ssrf = await post(strict, mk("urn:pilox:agent:origin-ssrf", agent.key));
      assert.equal(ssrf.status, 409);
      assert.match(ssrf.json.reason, /^origin_unreachable: .*private address/);
    } finally {
      await Promise.all([agent.app.stop(200), strict.app.stop(200), lan.app.stop(200)]);
    }
  });
});

describe("two appliances sharing one PostgreSQL", { timeout: 120_000 }, () => {
  it("concurrent conflicting writes: one wins, both serve it", async () => {
    const pg = await startPostgres();
    const pgExtra = `[registry.postgres]\nurl = "${pg.url}"\n`;
    const [R1, R2] = [await registry("pg1", [], pgExtra), await registry("pg2", [], pgExtra)];
    try {
      const h = "urn:pilox:agent:shared-conflict";
      assert.equal((await post(R1, signed(record(h, iso(120_000)), owner, 1))).status, 201);
      assert.equal((await get(R2, h)).status, 200, "one store behind both");
      for (let round = 0; round < 5; round++) {
        const at = iso(100_000 - round * 1_000);
        const a = signed(record(h, at, { capabilities: [`a${round}`] }), owner, 2 + round);
        const b = signed(record(h, at, { capabilities: [`b${round}`] }), owner, 2 + round);
        const [ra, rb] = await Promise.all([post(R1, a), post(R2, b)]);
        assert.deepEqual([ra.status, rb.status].sort(), [201, 409], `round ${round}: ${ra.body} ${rb.body}`);
        const [g1, g2] = await Promise.all([get(R1, h), get(R2, h)]);
        assert.deepEqual(g1.json.capabilities, g2.json.capabilities);
        assert.deepEqual(g1.json.capabilities, ra.status === 201 ? [`a${round}`] : [`b${round}`]);
      }
      const st = JSON.parse((await cli(["status", "--json", "--socket", s.path("pg1.sock")])).stdout);
      assert.equal(st.registry.storage, "postgres");
    } finally {
      await Promise.all([R1.app.stop(200), R2.app.stop(200)]);
      await pg.stop();
    }
  });
});

describe("two registry appliances on one PostgreSQL through its faults", { timeout: 150_000 }, () => {
  it("PostgreSQL stopped (-m immediate) under a write load on both, then started: writes resume, nothing half-written, /readyz says so; a write on one is read on the other at once", async () => {
    const pg = await startPostgres();
    const pgExtra = `[registry.postgres]\nurl = "${pg.url}"\n`;
    const [R1, R2] = [await registry("pgf1", [], pgExtra), await registry("pgf2", [], pgExtra)];
    try {
      const N = 120;
      const sent = new Map<string, RegistryRecord>();
      let unavailable = 0;
      let stale = 0;
      /** One writer per replica: each record posted until it is taken (201), then read on the other replica. */
      const writer = async (me: Reg, other: Reg, tag: string) => {
        for (let i = 0; i < N; i++) {
          const h = `urn:pilox:agent:fault-${tag}-${i}`;
          const rec = signed(record(h, iso(60_000), { capabilities: [`${tag}${i}`] }), owner, 1);
          sent.set(h, rec);
          for (;;) {
            const w = await post(me, rec).catch(() => ({ status: 0, headers: {} as Record<string, unknown>, json: null }));
            if (w.status === 201) {
              // Each read goes to PostgreSQL: the other replica serves the record at once, same ETag.
              const g = await get(other, h);
              // A 503 is the outage reaching this read (PostgreSQL stopped between the two), not staleness.
              if (g.status === 404 || (g.status === 200 && g.headers["etag"] !== w.headers["etag"])) stale++;
              break;
            }
            assert.ok(w.status === 503 || w.status === 0, `a write during the outage answers 503, not ${w.status}`);
            if (w.status === 503) unavailable++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      };
      const load = Promise.all([writer(R1, R2, "a"), writer(R2, R1, "b")]);
      await new Promise((r) => setTimeout(r, 300));
      pgCtl(pg, "stop");
      for (const r of [R1, R2]) {
        const ready = await http({ port: r.port }, "GET", "/readyz");
        assert.equal(ready.status, 503);
        assert.equal(ready.json.checks.registry.ok, false);
        assert.match(JSON.stringify(ready.json.checks.registry), /store|postgres|connect/i);
      }
      await new Promise((r) => setTimeout(r, 2_000));
      pgCtl(pg, "start");
      await load;
      assert.ok(unavailable > 0, "the outage was seen by the writers");
      assert.equal(stale, 0, "a record written on one replica was served by the other right after");
      for (const r of [R1, R2]) assert.equal((await http({ port: r.port }, "GET", "/readyz")).status, 200);
      // Every record whole, and the same on both: what was posted, countersigned.
      for (const [h, rec] of sent) {
        const [g1, g2] = await Promise.all([get(R1, h), get(R2, h)]);
        assert.equal(g1.status, 200, h);
        assert.deepEqual(g1.json, g2.json);
        assert.deepEqual(g1.json.capabilities, rec.capabilities);
        assert.equal(g1.json.proof.sigHex, rec.proof!.sigHex);
      }
      const store = new PgStore({ url: pg.url });
      try {
        assert.equal(await store.count(), 2 * N, "one row per record, none extra");
      } finally {
        await store.close();
      }
    } finally {
      await Promise.all([R1.app.stop(200), R2.app.stop(200)]);
      await pg.stop();
    }
  });
});

describe("sync between registries", { timeout: 300_000 }, () => {
  const regs: Reg[] = [];
  after(async () => Promise.all(regs.map((r) => r.app.stop(200))));

  it("three registries in a ring converge on 10,000 records; a delete on A reaches C; a conflict has one winner everywhere", async () => {
    // A pulls from B, B from C, C from A. Ports first, then the configurations naming them.
    const ports = [await freePort(), await freePort(), await freePort()];
    const keys = ["ra", "rb", "rc"].map((n) => createKeyFile(s.path(`${n}-id.key`)));
    const mk = async (i: number) => {
      const name = ["ra", "rb", "rc"][i]!;
      const next = (i + 1) % 3;
      const cfg = s.write(
        `${name}.toml`,
        `[instance]\norigin = "http://127.0.0.1:${ports[i]}"\nkey_file = "${s.path(`${name}-id.key`)}"\n[http]\nlisten = "127.0.0.1:${ports[i]}"\nmax_body_bytes = 65536\n[api]\nsocket = "${s.path(`${name}.sock`)}"\n` +
          `[registry]\nenabled = true\nwrite_token_file = "${s.path("token")}"\nsync_interval_seconds = 3600\n[[registry.peers]]\nurl = "http://127.0.0.1:${ports[next]}"\ncatalog_public_keys = ["${keys[next]!.publicKeyHex}"]\n`,
      );
      const app = await startAppliance(cfg, s.path(`${name}-state`));
      return { app, port: ports[i]!, url: `http://127.0.0.1:${ports[i]}`, key: keys[i]! };
    };
    for (let i = 0; i < 3; i++) regs.push(await mk(i));
    const [A, B, C] = regs as [Reg, Reg, Reg];
    const N = 10_000;
    const t0 = iso(600_000);
    const recs = Array.from({ length: N }, (_, i) => signed(record(`urn:pilox:agent:ring-${String(i).padStart(5, "0")}`, t0), owner, 1));
    // Spread across the three; a few at a time.
    for (let i = 0; i < N; i += 50) {
      await Promise.all(recs.slice(i, i + 50).map((r, j) => post(regs[(i + j) % 3]!, r).then((x) => assert.equal(x.status, 201, x.body))));
    }
    const syncAll = async () => {
      for (let round = 0; round < 3; round++) for (const r of regs) await r.app.registry!.syncNow();
    };
    await syncAll();
    const catalogs = await Promise.all(regs.map(async (r) => (await http({ port: r.port }, "GET", "/v1/records")).json));
    for (const c of catalogs) assert.equal(c.handles.length, N);
    const digests = catalogs.map((c) => c.catalogProofV2.digest);
    assert.equal(new Set(digests).size, 1, "identical content everywhere");

    // A delete on A (its operator) disappears from C (and B).
    const victim = recs[7]!.handle;
    assert.equal((await http({ port: A.port }, "DELETE", `/v1/records/${encodeURIComponent(victim)}`, undefined, auth)).status, 200);
    await syncAll();
    for (const r of regs) assert.equal((await get(r, victim)).status, 404, r.url);

    // The same handle, the same sequence and updatedAt, different content on A and C.
    const h = "urn:pilox:agent:ring-conflict";
    const at = iso(100_000);
    const x = signed(record(h, at, { capabilities: ["x"] }), owner, 5);
    const y = signed(record(h, at, { capabilities: ["y"] }), owner, 5);
    assert.equal((await post(A, x)).status, 201);
    assert.equal((await post(C, y)).status, 201);
    await syncAll();
    const winners = await Promise.all(regs.map(async (r) => JSON.stringify((await get(r, h)).json.capabilities)));
    assert.equal(new Set(winners).size, 1, `${winners.join(" ")}; sync state: ${JSON.stringify(regs.map((r) => r.app.registry!.status().peers))}`);
    const st = (await http({ port: B.port }, "GET", "/v1/records")).json;
    assert.equal(st.handles.length, N);
  });

  it("sync refuses a replayed or tampered feed page, a feed signed by an unpinned key, and a peer writing outside its prefixes", async () => {
    // A fake peer in front of a real registry, re-dating its signed feed pages.
    const { createServer } = await import("node:http");
    const real = regs[0]!;
    const srv = createServer(async (q, res) => {
      const r = await http({ port: real.port }, "GET", q.url!);
      const body = q.url!.includes("since=") ? JSON.stringify({ ...r.json, feedProof: { ...r.json.feedProof, issuedAt: new Date(Date.now() - 3_600_000).toISOString() } }) : r.body;
      res.writeHead(r.status, { "content-type": "application/json" }).end(body);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const fakeUrl = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    try {
      const pinnedOther = await registry("d-unpinned", [{ url: `${real.url}`, key: thief.publicKeyHex }]);
      const stale = await registry("d-stale", [{ url: fakeUrl, key: real.key.publicKeyHex }]);
      const scoped = await registry("d-scoped", [{ url: real.url, key: real.key.publicKeyHex, prefixes: ["urn:pilox:agent:ring-0000"] }]);
      regs.push(pinnedOther, stale, scoped);
      for (const r of [pinnedOther, stale, scoped]) await r.app.registry!.syncNow();
      const st = (r: Reg) => Object.values(r.app.registry!.status().peers)[0]!;
      assert.match(st(pinnedOther).lastError!, /feed_key_not_pinned/);
      assert.equal((await http({ port: pinnedOther.port }, "GET", "/v1/records")).json.handles.length, 0);
      assert.match(st(stale).lastError!, /feed_(bad_signature|stale)/);
      assert.equal((await http({ port: stale.port }, "GET", "/v1/records")).json.handles.length, 0);
      const scopedHandles = (await http({ port: scoped.port }, "GET", "/v1/records")).json.handles as string[];
      assert.ok(scopedHandles.length > 0 && scopedHandles.every((h) => h.startsWith("urn:pilox:agent:ring-0000")), `${scopedHandles.length}`);
      assert.ok((st(scoped).refused["outside_prefixes"] ?? 0) > 0);
      // A page replayed after the freshness window: refused by its age alone.
      const page = (await http({ port: real.port }, "GET", "/v1/records?since=0&limit=5")).json;
      const { feedRefusal } = await import("../src/registry/feed.ts");
      assert.equal(feedRefusal(page, { since: 0, pinned: [real.key.publicKeyHex], maxAgeMs: 300_000 }), undefined);
      assert.equal(feedRefusal(page, { since: 0, pinned: [real.key.publicKeyHex], maxAgeMs: 300_000, now: Date.now() + 600_000 }), "feed_stale");
      assert.equal(feedRefusal(page, { since: 5, pinned: [real.key.publicKeyHex], maxAgeMs: 300_000 }), "feed_mismatch");
      assert.equal(feedRefusal({ ...page, changes: page.changes.slice(1) }, { since: 0, pinned: [real.key.publicKeyHex], maxAgeMs: 300_000 }), "feed_mismatch");
    } finally {
      srv.close();
    }
  });

  it("the reference's client behaviour: catalog, then one GET per handle; its v1 verifier accepts what we serve", async () => {
    const A = regs[0]!;
    const cat = (await http({ port: A.port }, "GET", "/v1/records")).json;
    assert.deepEqual(verifyCatalog({ handles: cat.handles, catalogProof: cat.catalogProof }, { publicKeyHex: A.key.publicKeyHex }).ok, true, "v1 alone, as the reference checks it");
    for (const h of cat.handles.slice(0, 50)) {
      const r = await get(A, h);
      assert.equal(r.status, 200);
      const v1 = verifyProofV1(r.json);
      assert.ok(v1.ok && v1.signed, h);
    }
  });
});
