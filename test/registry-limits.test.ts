/**
 * The registry under hostile load: the catalog never reads record bodies (a registry whose
 * records outweigh its heap still answers GET /v1/records), storage limits per writer key and
 * in all, the store's format version (newer refused, older migrated), NUL bytes refused before
 * PostgreSQL, and PostgreSQL going away and coming back without a restart.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import postgres from "postgres";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile, keyFromSeedHex } from "../src/identity/index.ts";
import { createLogger } from "../src/log/index.ts";
import { Appliance as ApplianceClass } from "../src/daemon/appliance.ts";
import { signFeed } from "../src/registry/feed.ts";
import { signRecord } from "../src/registry/proof.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { contentDigest, countersign } from "../src/registry/rules.ts";
import { PgStore } from "../src/registry/pg-store.ts";
import { SqliteStore } from "../src/registry/sqlite-store.ts";
import { STORE_FORMAT, StoreFormatError, type RecordStore } from "../src/registry/store.ts";
import { http } from "./helpers/appliance.ts";
import { ENTRY } from "./helpers/cli.ts";
import { pgCtl, startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
after(() => s.cleanup());
const TOKEN = "registry-limits-token-0123456789";
s.write("token", TOKEN);
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const iso = (msAgo = 0) => new Date(Date.now() - msAgo).toISOString().replace(/\.\d+Z$/, "Z");
const record = (handle: string, extra: Record<string, unknown> = {}): RegistryRecord =>
  ({ schema: "pilox-registry-record-v1", handle, updatedAt: iso(), agentCardUrl: `https://agents.example/${encodeURIComponent(handle)}/card.json`, ...extra }) as RegistryRecord;

function entry(handle: string, body: RegistryRecord, keys: string[] = []) {
  return { handle, seq: 1, body, deleted: false, keys, agentCardUrl: body.agentCardUrl, expiresAt: 0, etag: 'W/"x"' };
}

async function start(name: string, extra: string, logs?: string[]): Promise<{ app: Appliance; port: number }> {
  const port = await freePort();
  createKeyFile(s.path(`${name}.key`));
  const cfg = s.write(
    `${name}.toml`,
    `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path(`${name}.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path(`${name}.sock`)}"\n` +
      `[registry]\nenabled = true\nwrite_token_file = "${s.path("token")}"\nsync_interval_seconds = 3600\nrequire_proof = false\n${extra}`,
  );
  const log = createLogger({ level: "warn", format: "text", write: (l) => logs?.push(l) });
  const app = await ApplianceClass.start({ load: { path: cfg, stateDir: s.path(`${name}-state`) }, log });
  return { app, port };
}

describe("the catalog reads no record bodies", { timeout: 120_000 }, () => {
  it("a registry whose records outweigh its heap answers GET /v1/records (it crashed with 'heap limit' before)", async () => {
    // 3,000 records of ~24 KB: 72 MB of bodies, against a 48 MB heap.
    const stateDir = s.path("heavy-state");
    mkdirSync(stateDir, { recursive: true });
    const store = new SqliteStore(`${stateDir}/registry.sqlite`);
    const pad = "x".repeat(24 * 1024);
    for (let i = 0; i < 3_000; i++) {
      const h = `urn:pilox:agent:heavy-${String(i).padStart(5, "0")}`;
      await store.put(entry(h, record(h, { description: pad })), null);
    }
    await store.close();
    const port = await freePort();
    createKeyFile(s.path("heavy.key"));
    const cfg = s.write(
      "heavy.toml",
      `[node]\nstate_dir = "${stateDir}"\n[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path("heavy.key")}"\n[http]\nlisten = "127.0.0.1:${port}"\n` +
        `[api]\nsocket = "${s.path("heavy.sock")}"\n[registry]\nenabled = true\nsync_interval_seconds = 3600\n`,
    );
    const child = spawn(process.execPath, ["--max-old-space-size=48", "--import", "tsx", ENTRY, "serve", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PILOX_MESH_CONFIG: "" } });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      let up = false;
      for (let i = 0; i < 100 && !up; i++) {
        await new Promise((r) => setTimeout(r, 200));
        up = await http({ port }, "GET", "/healthz").then((r) => r.status === 200, () => false);
      }
      assert.ok(up, `the appliance did not start: ${stderr}`);
      for (let i = 0; i < 3; i++) {
        const r = await http({ port }, "GET", "/v1/records");
        assert.equal(r.status, 200, stderr);
        assert.equal(r.json.handles.length, 3_000);
        assert.equal(r.json.catalogProofV2.entries.length, 3_000);
      }
      const one = await http({ port }, "GET", `/v1/records/${encodeURIComponent("urn:pilox:agent:heavy-00042")}`);
      assert.equal(one.status, 200);
      assert.equal(child.exitCode, null, `the appliance died: ${stderr}`);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });
});

for (const kind of ["sqlite", "postgres"] as const) {
  describe(`the ${kind} store: catalog pages, byte-bounded change pages, usage, format`, { timeout: 90_000 }, () => {
    let st: RecordStore;
    let pg: TestPostgres | undefined;
    const open = (): RecordStore => (kind === "sqlite" ? new SqliteStore(s.path("fmt.sqlite")) : new PgStore({ url: pg!.url }));
    before(async () => {
      if (kind === "postgres") pg = await startPostgres();
      st = open();
    });
    after(async () => {
      await st.close();
      await pg?.stop();
    });

    it("catalog pages come in handle order with each record's content digest; change pages stop at their byte bound", async () => {
      const bodies = new Map<string, RegistryRecord>();
      for (const i of [3, 1, 2, 5, 4]) {
        const h = `urn:pilox:agent:page-${i}`;
        const b = record(h, { description: "d".repeat(1000 * i) });
        bodies.set(h, b);
        assert.notEqual(await st.put(entry(h, b), null), "conflict");
      }
      const first = await st.catalogPage("", 2);
      const rest = await st.catalogPage(first[1]!.handle, 10);
      const all = [...first, ...rest];
      assert.deepEqual(all.map((r) => r.handle), [1, 2, 3, 4, 5].map((i) => `urn:pilox:agent:page-${i}`));
      for (const r of all) assert.equal(r.digest, contentDigest(bodies.get(r.handle)!));
      // Bodies of 3, 1, 2, 5, 4 KB in cursor order: 4.5 KB holds 3 KB + 1 KB, and never less than one.
      const page = await st.changes(0, { limit: 100, maxBytes: 4_500 });
      assert.deepEqual(page.map((e) => e.handle), ["urn:pilox:agent:page-3", "urn:pilox:agent:page-1"]);
      assert.equal((await st.changes(0, { limit: 100, maxBytes: 10 })).length, 1);
      assert.ok((await st.head()) >= 5);
    });

    it("a quota refuses what grows past a limit, never a shrink, a delete or an update in place", async () => {
      const q = { maxRecords: 100, maxBytes: 10 * 1024 * 1024, maxRecordsPerKey: 2, maxBytesPerKey: 1024 * 1024 };
      const k = ["aa".repeat(32)];
      const h = (i: number) => `urn:pilox:agent:quota-${i}`;
      assert.notEqual(await st.put(entry(h(1), record(h(1)), k), null, q), "conflict");
      const second = await st.put(entry(h(2), record(h(2)), k), null, q);
      assert.ok(typeof second === "object" && "cursor" in second);
      const third = await st.put(entry(h(3), record(h(3)), k), null, q);
      assert.equal((third as { limit?: string }).limit, "records_per_key");
      // Another key is not held back by the first one's count.
      assert.ok("cursor" in (await st.put(entry(h(3), record(h(3)), ["bb".repeat(32)]), null, q) as object));
      // Replacing a record of a key at its limit is fine; so is deleting one.
      const upd = await st.put({ ...entry(h(2), record(h(2), { description: "new" }), k), seq: 2 }, second.cursor, q);
      assert.ok(typeof upd === "object" && "cursor" in upd);
      const del = await st.put({ ...entry(h(2), record(h(2)), k), seq: 3, deleted: true, expiresAt: Date.now() + 60_000 }, upd.cursor, q);
      assert.ok(typeof del === "object" && "cursor" in del);
      assert.ok("cursor" in (await st.put(entry(h(4), record(h(4)), k), null, q) as object), "room again after a delete");
      const big = await st.put(entry(h(5), record(h(5), { description: "z".repeat(2 * 1024 * 1024) }), ["cc".repeat(32)]), null, q);
      assert.equal((big as { limit?: string }).limit, "bytes_per_key");
    });

    it("a store written by a newer format is refused, naming both versions", async () => {
      await st.close();
      if (kind === "sqlite") {
        const db = new DatabaseSync(s.path("fmt.sqlite"));
        db.exec(`PRAGMA user_version = ${STORE_FORMAT + 1}`);
        db.close();
        assert.throws(() => open(), (e: Error) => e instanceof StoreFormatError && e.message.includes(`format ${STORE_FORMAT + 1}`) && e.message.includes(`format ${STORE_FORMAT}`));
        const fix = new DatabaseSync(s.path("fmt.sqlite"));
        fix.exec(`PRAGMA user_version = ${STORE_FORMAT}`);
        fix.close();
      } else {
        const sql = postgres(pg!.url, { onnotice: () => {} });
        await sql`UPDATE pilox_registry_meta SET v = ${STORE_FORMAT + 1} WHERE k = 'format'`;
        const newer = open();
        await assert.rejects(newer.count(), (e: Error) => e instanceof StoreFormatError && e.message.includes(`format ${STORE_FORMAT + 1}`));
        await newer.close();
        await sql`UPDATE pilox_registry_meta SET v = ${STORE_FORMAT} WHERE k = 'format'`;
        await sql.end();
      }
      st = open();
      assert.ok((await st.count()) > 0);
    });

    it("a format-1 store (before digests and quotas) is migrated in place when opened", async () => {
      const h = "urn:pilox:agent:old-format";
      const body = record(h);
      const keys = ["dd".repeat(32)];
      if (kind === "sqlite") {
        const file = s.path("format1.sqlite");
        const db = new DatabaseSync(file);
        db.exec(`CREATE TABLE records (handle TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL, deleted INTEGER NOT NULL, keys TEXT NOT NULL, agent_card_url TEXT NOT NULL,
          expires_at INTEGER NOT NULL, cursor INTEGER NOT NULL UNIQUE, etag TEXT NOT NULL, valid_until INTEGER NOT NULL, ttl INTEGER NOT NULL);
          CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO meta VALUES ('cursor', 1);`);
        db.prepare("INSERT INTO records VALUES (?, 1, ?, 0, ?, ?, 0, 1, 'W/\"e\"', 0, -1)").run(h, JSON.stringify(body), JSON.stringify(keys), body.agentCardUrl);
        db.close();
        const migrated = new SqliteStore(file);
        assert.deepEqual(await migrated.catalogPage("", 10), [{ handle: h, seq: 1, digest: contentDigest(body) }]);
        const refused = await migrated.put(entry("urn:pilox:agent:old-format-2", record("urn:pilox:agent:old-format-2"), keys), null, { maxRecords: 10, maxBytes: 1 << 30, maxRecordsPerKey: 1, maxBytesPerKey: 1 << 30 });
        assert.equal((refused as { limit?: string }).limit, "records_per_key", "the migrated row counts against its writer");
        await migrated.close();
        const v = new DatabaseSync(file);
        assert.equal((v.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, STORE_FORMAT);
        v.close();
      } else {
        const old = await startPostgres();
        try {
          const sql = postgres(old.url, { onnotice: () => {} });
          await sql`CREATE TABLE pilox_registry_records (handle text PRIMARY KEY, seq bigint NOT NULL, body text NOT NULL, deleted boolean NOT NULL, keys text NOT NULL,
            agent_card_url text NOT NULL, expires_at bigint NOT NULL, cursor bigint NOT NULL UNIQUE, etag text NOT NULL, valid_until bigint NOT NULL, ttl integer NOT NULL)`;
          await sql`CREATE SEQUENCE pilox_registry_cursor`;
          await sql`INSERT INTO pilox_registry_records VALUES (${h}, 1, ${JSON.stringify(body)}, false, ${JSON.stringify(keys)}, ${body.agentCardUrl}, 0, 1, 'W/"e"', 0, -1)`;
          await sql`SELECT setval('pilox_registry_cursor', 1)`;
          await sql.end();
          const migrated = new PgStore({ url: old.url });
          assert.deepEqual(await migrated.catalogPage("", 10), [{ handle: h, seq: 1, digest: contentDigest(body) }]);
          const refused = await migrated.put(entry("urn:pilox:agent:old-format-2", record("urn:pilox:agent:old-format-2"), keys), null, { maxRecords: 10, maxBytes: 1 << 30, maxRecordsPerKey: 1, maxBytesPerKey: 1 << 30 });
          assert.equal((refused as { limit?: string }).limit, "records_per_key", "the migrated row counts against its writer");
          await migrated.close();
        } finally {
          await old.stop();
        }
      }
    });
  });
}

describe("registry limits over HTTP", { timeout: 60_000 }, () => {
  let reg: { app: Appliance; port: number };
  before(async () => {
    reg = await start("quota", "max_records = 3\nmax_records_per_key = 2\n");
  });
  after(async () => reg.app.stop());

  it("a write past a storage limit gets 403 quota_exceeded naming the limit, and a metric", async () => {
    const key = keyFromSeedHex("44".repeat(32));
    const post = (rec: RegistryRecord) => http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(rec), auth);
    assert.equal((await post(signRecord(record("urn:pilox:agent:q-1"), key, { kid: "k", seq: 1 }))).status, 201);
    assert.equal((await post(signRecord(record("urn:pilox:agent:q-2"), key, { kid: "k", seq: 1 }))).status, 201);
    const third = await post(signRecord(record("urn:pilox:agent:q-3"), key, { kid: "k", seq: 1 }));
    assert.equal(third.status, 403);
    assert.equal(third.json.error, "quota_exceeded");
    assert.match(third.json.reason, /records_per_key/);
    assert.equal((await post(record("urn:pilox:agent:q-unsigned-1"))).status, 201);
    const total = await post(record("urn:pilox:agent:q-unsigned-2"));
    assert.equal(total.status, 403);
    assert.match(total.json.reason, /^records:/);
    const m = await http({ port: reg.port }, "GET", "/metrics");
    assert.match(m.body, /pilox_mesh_registry_quota_refused_total\{limit="records_per_key"\} 1/);
    assert.match(m.body, /pilox_mesh_registry_quota_refused_total\{limit="records"\} 1/);
    assert.match(m.body, /pilox_mesh_registry_quota_refused_total\{limit="bytes"\} 0/);
  });

  it("POST /v1/records/validate answers 200 without a token (wouldAcceptWrite false)", async () => {
    const r = await http({ port: reg.port }, "POST", "/v1/records/validate", JSON.stringify(record("urn:pilox:agent:v-1")), { "content-type": "application/json" });
    assert.equal(r.status, 200);
    assert.equal(r.json.schemaValid, true);
    assert.equal(r.json.wouldAcceptWrite, false);
  });
});

describe("the registry on PostgreSQL: NUL bytes and a server that goes away", { timeout: 120_000 }, () => {
  let pg: TestPostgres;
  let reg: { app: Appliance; port: number };
  const logs: string[] = [];
  let pgUrl: string;
  before(async () => {
    pg = await startPostgres();
    pgUrl = pg.url;
    reg = await start("pgfault", `[registry.postgres]\nurl = "${pgUrl}"\n`, logs);
  });
  after(async () => {
    await reg.app.stop();
    await pg.stop();
  });

  it("a NUL byte in a handle or URL is refused before the store: no 500, no log line per request", async () => {
    logs.length = 0;
    for (let i = 0; i < 50; i++) {
      assert.equal((await http({ port: reg.port }, "GET", "/v1/records/urn:pilox:agent:x%00y")).status, 404);
      assert.equal((await http({ port: reg.port }, "GET", "/v1/resolve?agentCardUrl=https://a%00b")).status, 400);
      const p = await http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(record("urn:pilox:agent:x\u0000y")), auth);
      assert.equal(p.status, 400);
      assert.equal(p.json.error, "invalid_record");
      const d = await http({ port: reg.port }, "DELETE", "/v1/records/urn:pilox:agent:x%00y", undefined, auth);
      assert.equal(d.status, 404);
    }
    assert.equal(logs.filter((l) => /(^| )level=error /.test(l)).length, 0, logs.join("\n"));
  });

  it("PostgreSQL stopped: 503 store_unavailable with Retry-After, one log line, /readyz says so; started again: writes resume", async () => {
    assert.equal((await http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(record("urn:pilox:agent:before-stop")), auth)).status, 201);
    pgCtl(pg, "stop");
    logs.length = 0;
    for (let i = 0; i < 20; i++) {
      const w = await http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(record(`urn:pilox:agent:during-${i}`)), auth);
      assert.equal(w.status, 503, w.body);
      assert.equal(w.json.error, "store_unavailable");
      assert.equal(w.headers["retry-after"], "5");
    }
    const ready = await http({ port: reg.port }, "GET", "/readyz");
    assert.equal(ready.status, 503);
    assert.equal(ready.json.checks.registry.ok, false);
    // Logged once per 10 s at most, however many requests fail.
    assert.ok(logs.filter((l) => /store unavailable/.test(l)).length <= 2, logs.join("\n"));
    pgCtl(pg, "start");
    let ok = 0;
    for (let i = 0; i < 50 && ok === 0; i++) {
      const w = await http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(record("urn:pilox:agent:after-start")), auth);
      if (w.status === 201) ok++;
      else await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(ok, 1, "writes resume without restarting the appliance");
    assert.equal((await http({ port: reg.port }, "GET", "/readyz")).status, 200);
    assert.equal((await http({ port: reg.port }, "GET", `/v1/records/${encodeURIComponent("urn:pilox:agent:before-stop")}`)).status, 200);
  });
});

describe("records that came with no proof", { timeout: 60_000 }, () => {
  it("the same unsigned record posted again is a success that writes nothing (its digest is the stored one's)", async () => {
    const reg = await start("unsigned-retry", "");
    try {
      const rec = JSON.stringify(record("urn:pilox:agent:unsigned-retry"));
      const first = await http({ port: reg.port }, "POST", "/v1/records", rec, auth);
      const again = await http({ port: reg.port }, "POST", "/v1/records", rec, auth);
      assert.equal(first.status, 201);
      assert.equal(again.status, 201, again.body);
      assert.equal(again.json.etag, first.json.etag);
      const feed = (await http({ port: reg.port }, "GET", "/v1/records?since=0&limit=10")).json as { changes: unknown[] };
      assert.equal(feed.changes.length, 1, "one write, not two");
    } finally {
      await reg.app.stop();
    }
  });
});

describe("registry sync against hostile peers", { timeout: 120_000 }, () => {
  const peerKey = keyFromSeedHex("55".repeat(32));
  let server: Server;
  let peerUrl: string;
  let served = 0;
  let mode: "junk-forever" | "endless-body" | "countersigned" = "junk-forever";
  let pageOf: ((since: number) => unknown[]) | undefined;
  before(async () => {
    server = createServer((req, res) => {
      const since = Number(new URL(req.url ?? "/", "http://x").searchParams.get("since") ?? 0);
      if (mode === "endless-body") {
        res.writeHead(200, { "content-type": "application/json" });
        const chunk = Buffer.alloc(256 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(chunk)) served += chunk.length;
          if (!res.destroyed) res.once("drain", pump);
        };
        pump();
        return;
      }
      if (mode === "countersigned") {
        const changes = pageOf!(since);
        const next = since + changes.length;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ changes, next, more: false, feedProof: signFeed(peerKey, peerUrl, since, next, changes) }));
        return;
      }
      // A signed page of junk for every cursor, with `more: true` for ever.
      served++;
      const changes = [{ cursor: since + 1, handle: 42 }, { cursor: since + 2, handle: "urn:pilox:agent:junk", record: "nope" }];
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ changes, next: since + 2, more: true, feedProof: signFeed(peerKey, peerUrl, since, since + 2, changes) }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    peerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("a peer answering `more: true` for ever with refused pages: the pass ends, the peer is paused, the cursor is saved as it goes", async () => {
    mode = "junk-forever";
    const reg = await start("hostile-sync", `[[registry.peers]]\nurl = "${peerUrl}"\ncatalog_public_keys = ["${peerKey.publicKeyHex}"]\n`);
    try {
      const t0 = Date.now();
      await reg.app.registry!.syncNow();
      assert.ok(Date.now() - t0 < 10_000, "one pass ends");
      const st = (reg.app.registry!.status().peers as Record<string, { cursor: number; lastError: string | null; refused: Record<string, number> }>)[peerUrl]!;
      assert.equal(served, 3, "paused after three refused pages (it looped without pause before)");
      assert.match(st.lastError ?? "", /3 pages in a row had every change refused/);
      assert.equal(st.cursor, 6);
      assert.equal(st.refused["malformed"], 6);
      const saved = JSON.parse(readFileSync(s.path("hostile-sync-state", "registry-sync.json"), "utf8"));
      assert.equal(saved[peerUrl].cursor, 6);
      // Backed off: the next pass does not ask it again at once.
      await reg.app.registry!.syncNow();
      assert.equal(served, 3);
    } finally {
      await reg.app.stop();
    }
  });

  it("a signed page's records are merged only when their countersignature names a pinned key over their content", async () => {
    mode = "countersigned";
    const other = keyFromSeedHex("56".repeat(32));
    const h = (n: string) => `urn:pilox:agent:cs-${n}`;
    const good = countersign(record(h("good")), peerKey, peerUrl);
    const unpinned = countersign(record(h("unpinned")), other, peerUrl);
    // Countersigned, then changed: the countersignature's digest no longer names this content.
    const changed = { ...countersign(record(h("changed")), peerKey, peerUrl), agentCardUrl: "https://agents.example/elsewhere/card.json" };
    const uncountersigned = record(h("none"));
    // Names the pinned key over this content with a signature that does not verify: the page's
    // own signature (by the pinned key, over every byte of the change) is what authenticates it,
    // so the countersignature's is not verified again.
    const cs = countersign(record(h("sig-unchecked")), peerKey, peerUrl);
    const sigUnchecked = { ...cs, proof: { ...cs.proof, registrar: { ...(cs.proof!["registrar"] as object), sigHex: "00".repeat(64) } } };
    const recs = [good, unpinned, changed, uncountersigned, sigUnchecked];
    pageOf = (since) => recs.slice(since).map((r, i) => ({ cursor: since + i + 1, handle: r.handle, record: r }));
    const reg = await start("countersigned-sync", `[[registry.peers]]\nurl = "${peerUrl}"\ncatalog_public_keys = ["${peerKey.publicKeyHex}"]\n`);
    try {
      await reg.app.registry!.syncNow();
      const st = (reg.app.registry!.status().peers as Record<string, { lastError: string | null; merged: number; refused: Record<string, number> }>)[peerUrl]!;
      assert.equal(st.lastError, null);
      assert.deepEqual(st.refused, { not_countersigned_by_peer: 3 });
      const handles = (await http({ port: reg.port }, "GET", "/v1/records")).json.handles as string[];
      assert.deepEqual(handles.sort(), [h("good"), h("sig-unchecked")]);
      const got = (await http({ port: reg.port }, "GET", `/v1/records/${encodeURIComponent(h("good"))}`)).json as RegistryRecord;
      const registrar = got.proof!["registrar"] as { origin: string; digest: string };
      assert.equal(registrar.origin, `http://127.0.0.1:${reg.port}`, "countersigned again, by us");
      assert.equal(registrar.digest, contentDigest(good), "over the same content digest");
      // What the catalog lists is that digest too (kept by the store at write time).
      const catalog = (await http({ port: reg.port }, "GET", "/v1/records")).json as { catalogProofV2: { entries: [string, number, string][] } };
      assert.deepEqual(catalog.catalogProofV2.entries.find((e) => e[0] === h("good"))?.[2], contentDigest(good));
    } finally {
      await reg.app.stop();
      mode = "junk-forever";
    }
  });

  it("a peer streaming an endless body: the read stops at the bound, the pass fails naming it", async () => {
    mode = "endless-body";
    served = 0;
    const reg = await start("endless-sync", `[[registry.peers]]\nurl = "${peerUrl}"\ncatalog_public_keys = ["${peerKey.publicKeyHex}"]\n`);
    try {
      await reg.app.registry!.syncNow();
      const st = (reg.app.registry!.status().peers as Record<string, { lastError: string | null }>)[peerUrl]!;
      assert.match(st.lastError ?? "", /body larger than 67108864 bytes/);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(served < 100 * 1024 * 1024, `the peer sent ${served} bytes: reading went on past the bound`);
    } finally {
      await reg.app.stop();
    }
  });
});
