/**
 * Working with an unmodified Pilox on both sides of its hive-/pilox- split (issue 18), against a
 * port of its registry service (test/helpers/reference.ts: its routes, its Ajv schema, its
 * `hive-`-only verifiers, its pull sync): it syncs every record from us with catalog and proof
 * verification on, and we sync every record from it; records are checked for every value its
 * schema constrains; bodies over a limit get a clean 413 on every listener; an identical
 * re-post succeeds; errors on its routes are in its shape; our `hive-` descriptor validates
 * against its schema; a handle in a stock registry resolves under the explicit proof-v1 policy.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { checkDocument } from "../src/discovery/index.ts";
import { createKeyFile, keyFromSeedHex, type Ed25519Key } from "../src/identity/index.ts";
import { verifyCatalog } from "../src/registry/catalog.ts";
import { signRecord } from "../src/registry/proof.ts";
import { checkRecord, type RegistryRecord } from "../src/registry/record.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { cli } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { referenceAjv, referenceSchema, referenceSignRecord, referenceVerifyCatalog, referenceVerifyRecordProof, seedKey, startReferenceRegistry, type ReferenceRegistry } from "./helpers/reference.ts";
import { scratch } from "./helpers/tmp.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const s = scratch();
const TOKEN = "registry-write-token-0123456789";
s.write("token", TOKEN);
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const author = keyFromSeedHex("51".repeat(32));
const stockAuthor = seedKey("52".repeat(32));

/** A full record of the `hive-` family: every optional field the reference's schema knows. */
function hiveRecord(i: number, updatedAt = "2026-11-01T10:00:00Z"): RegistryRecord {
  return {
    schema: "hive-registry-record-v1",
    handle: `urn:pilox:agent:interop:${String(i).padStart(4, "0")}`,
    updatedAt,
    agentCardUrl: `https://agents.example/${i}/card.json`,
    meshDescriptorUrl: `https://agents.example/.well-known/pilox-mesh.json`,
    ttlSecondsRecommended: 300,
    capabilities: ["a2a-jsonrpc", "summarize.v1"],
    controllerDid: "did:web:agents.example",
    version: "1.2.3",
    inputModalities: ["text"],
    outputModalities: ["text"],
    pricing: { currency: "EUR", inputTokensPerMillion: 0.5, outputTokensPerMillion: 1 },
    buyerInputs: [{ id: "api", label: "API key", kind: "secret", key: "API_KEY", required: true }],
    publishAttestation: { confirmedAt: "2026-11-01T09:00:00Z", confirmedBuyerConfiguration: true },
  } as RegistryRecord;
}

interface Reg {
  app: Appliance;
  port: number;
  url: string;
  key: Ed25519Key;
  sock: string;
}

async function registry(name: string, extra = ""): Promise<Reg> {
  const port = await freePort();
  const key = createKeyFile(s.path(`${name}-id.key`));
  const sock = s.path(`${name}.sock`);
  const cfg = s.write(
    `${name}.toml`,
    `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path(`${name}-id.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${sock}"\n` +
      `[registry]\nenabled = true\nwrite_token_file = "${s.path("token")}"\nsync_interval_seconds = 3600\n${extra}`,
  );
  const app = await startAppliance(cfg, s.path(`${name}-state`));
  return { app, port, url: `http://127.0.0.1:${port}`, key, sock };
}

const post = (r: Reg, rec: unknown) => http({ port: r.port }, "POST", "/v1/records", JSON.stringify(rec), auth);

/** Sends `size` bytes in 16 KiB chunks, pausing `pauseMs` between them (a slow client); the status and body it reads back. */
function slowPost(target: { port: number } | { socketPath: string }, path: string, size: number, o: { chunked?: boolean; pauseMs?: number; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const req = request(
      { ...("port" in target ? { host: "127.0.0.1", port: target.port } : { socketPath: target.socketPath }), method: "POST", path, agent: false, headers: { "content-type": "application/json", ...(o.chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(size) }), ...o.headers } },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", (e) => resolve({ error: `response: ${e.message}` }));
      },
    );
    req.on("error", (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    void (async () => {
      for (let sent = 0; sent < size && !req.destroyed; sent += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, size - sent));
        if (!req.write(part)) await new Promise((r) => req.once("drain", r));
        if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
      }
      req.end();
    })();
  });
}

let A: Reg;
let up: TestUpstream;
before(async () => {
  up = await startUpstream();
  A = await registry("a", `[gateway]\nenabled = true\nupstream_url = "${up.url}"\nmax_body_bytes = 65536\n`);
  for (let i = 0; i < 40; i++) assert.equal((await post(A, signRecord(hiveRecord(i), author, { kid: "k1", seq: 1 }))).status, 201);
});
after(async () => {
  await A.app.stop(200);
  await up.close();
  s.cleanup();
});

describe("the reference's registry syncing from us", { timeout: 120_000 }, () => {
  it("merges every record with catalog and proof verification on (pinned to our key)", async () => {
    const ref = await startReferenceRegistry({ writeSecret: TOKEN, syncVerifyCatalog: true, syncCatalogPubkeyHex: A.key.publicKeyHex, syncVerifyProof: true });
    try {
      const r = await ref.syncFrom(A.url);
      assert.deepEqual(r, { merged: 40, skipped: {}, catalog: "ok" });
      for (const rec of ref.store.values()) assert.deepEqual(referenceVerifyRecordProof(rec), { ok: true });
    } finally {
      await ref.close();
    }
  });

  it("the catalog carries a proof each family verifies; ours checks either", async () => {
    const cat = (await http({ port: A.port }, "GET", "/v1/records")).json;
    assert.equal(cat.catalogProof.type, "hive-registry-catalog-ed25519-v1");
    assert.equal(cat.catalogProofAlt.type, "pilox-registry-catalog-ed25519-v1");
    assert.deepEqual(referenceVerifyCatalog(cat, A.key.publicKeyHex), { ok: true });
    assert.equal(verifyCatalog(cat, { publicKeyHex: A.key.publicKeyHex }).ok, true);
    const piloxFirst = { handles: cat.handles, catalogProof: cat.catalogProofAlt };
    assert.equal(verifyCatalog(piloxFirst, { publicKeyHex: A.key.publicKeyHex }).ok, true, "the pilox- proof verifies too");
    assert.deepEqual(referenceVerifyCatalog(piloxFirst), { ok: false, reason: "bad_proof_type" }, "(which the stock registry would refuse)");
  });

  it("registry sign gives a hive- record the hive- proof type, which the stock registry accepts", async () => {
    const keyFile = s.path("author.key");
    createKeyFile(keyFile);
    const unsigned = { ...hiveRecord(900) } as Record<string, unknown>;
    const out = await cli(["registry", "sign", "--key-file", keyFile, "--kid", "k1"], { stdin: JSON.stringify(unsigned) });
    assert.equal(out.code, 0, out.stderr);
    const signed = JSON.parse(out.stdout) as Record<string, any>;
    assert.equal(signed["proof"].type, "hive-registry-record-ed25519-v1");
    const pilox = JSON.parse((await cli(["registry", "sign", "--key-file", keyFile, "--kid", "k1"], { stdin: JSON.stringify({ ...unsigned, schema: "pilox-registry-record-v1" }) })).stdout);
    assert.equal(pilox.proof.type, "pilox-registry-record-ed25519-v1", "a pilox- record keeps its own family");
    const ref = await startReferenceRegistry({ writeSecret: TOKEN, verifyProof: true });
    try {
      const r = await fetch(`${ref.url}/v1/records`, { method: "POST", headers: auth, body: JSON.stringify(signed) });
      assert.equal(r.status, 201, await r.text());
    } finally {
      await ref.close();
    }
  });
});

describe("registry template", { timeout: 60_000 }, () => {
  it("prints a record that signs and publishes as it is, to us and to a stock registry (the guide's worked example)", async () => {
    const keyFile = s.path("tmpl.key");
    createKeyFile(keyFile);
    for (const family of ["pilox", "hive"]) {
      const handle = `urn:pilox:agent:interop:template-${family}`;
      const t = await cli(["registry", "template", "--handle", handle, "--origin", "https://agents.example", "--key-file", keyFile, "--family", family]);
      assert.equal(t.code, 0, t.stderr);
      const signed = await cli(["registry", "sign", "--key-file", keyFile, "--kid", "k1"], { stdin: t.stdout });
      assert.equal(signed.code, 0, signed.stderr);
      const pub = await cli(["registry", "publish", A.url, "--token-file", s.path("token")], { stdin: signed.stdout });
      assert.equal(pub.code, 0, pub.stderr + pub.stdout);
      if (family === "hive") {
        const ref = await startReferenceRegistry({ writeSecret: TOKEN, verifyProof: true });
        try {
          const r = await fetch(`${ref.url}/v1/records`, { method: "POST", headers: auth, body: signed.stdout });
          assert.equal(r.status, 201, await r.text());
        } finally {
          await ref.close();
        }
      }
    }
  });
});

describe("our sync from a stock registry", { timeout: 120_000 }, () => {
  let ref: ReferenceRegistry;
  let B: Reg;
  const N = 30;
  before(async () => {
    ref = await startReferenceRegistry({ writeSecret: TOKEN, catalogSeedHex: "44".repeat(32), verifyProof: true });
    for (let i = 0; i < N; i++) {
      const rec = referenceSignRecord({ ...hiveRecord(100 + i), meshDescriptorUrl: `${ref.url}/.well-known/pilox-mesh.json` }, stockAuthor);
      const r = await fetch(`${ref.url}/v1/records`, { method: "POST", headers: auth, body: JSON.stringify(rec) });
      assert.equal(r.status, 201, await r.text());
    }
    B = await registry("b", `[[registry.peers]]\nurl = "${ref.url}"\ncatalog_public_keys = ["${ref.catalogKey!.publicKeyHex}"]\n`);
  });
  after(async () => {
    await B.app.stop(200);
    await ref.close();
  });

  it("falls back to the reference's protocol (catalog, then a GET per handle) and merges every record", async () => {
    await B.app.registry!.syncNow();
    const st = JSON.parse((await cli(["status", "--json", "--socket", B.sock])).stdout).registry.peers[ref.url];
    assert.equal(st.lastError, null, st.lastError);
    assert.equal(st.protocol, "reference");
    assert.equal(st.merged, N);
    for (const [h, rec] of ref.store) {
      const g = await http({ port: B.port }, "GET", `/v1/records/${encodeURIComponent(h)}`);
      assert.equal(g.status, 200, h);
      const { registrar: _r, ...proof } = g.json.proof;
      assert.deepEqual({ ...g.json, proof }, rec, "the record as the stock registry holds it (plus our countersignature)");
    }
    const text = (await cli(["status", "--socket", B.sock])).stdout;
    assert.match(text, /reference protocol: catalog \+ GET per handle\): 30 merged/);
    // A newer version there is taken on the next pass.
    const h = [...ref.store.keys()][0]!;
    const newer = referenceSignRecord({ ...hiveRecord(100), handle: h, updatedAt: "2026-11-02T10:00:00Z", meshDescriptorUrl: `${ref.url}/.well-known/pilox-mesh.json` }, stockAuthor);
    ref.store.set(h, newer);
    await B.app.registry!.syncNow();
    assert.equal((await http({ port: B.port }, "GET", `/v1/records/${encodeURIComponent(h)}`)).json.updatedAt, "2026-11-02T10:00:00Z");
  });

  it("a peer set to our feed protocol names the real cause", async () => {
    const C = await registry("c", `[[registry.peers]]\nurl = "${ref.url}"\ncatalog_public_keys = ["${ref.catalogKey!.publicKeyHex}"]\nprotocol = "feed"\n`);
    try {
      await C.app.registry!.syncNow();
      const st = JSON.parse((await cli(["status", "--json", "--socket", C.sock])).stdout).registry.peers[ref.url];
      assert.match(st.lastError, /answered a catalog, not a change feed: it speaks the reference's protocol/);
    } finally {
      await C.app.stop(200);
    }
  });

  it("resolve takes a stock record only under the explicit proof-v1 policy, and says what was verified", async () => {
    const h = [...ref.store.keys()][1]!;
    const no = await cli(["resolve", h, "--registry", ref.url, "--allow-private", "--json"]);
    assert.equal(no.code, 1);
    assert.match(no.stdout, /proof_v1_only: .*--accept-proof-v1 or gateway\.accept_proof_v1_from/);
    const yes = await cli(["resolve", h, "--registry", ref.url, "--allow-private", "--accept-proof-v1", "--json"]);
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    const v = JSON.parse(yes.stdout);
    assert.deepEqual(v.verified, { record: "v1", descriptor: "unsigned" });
    assert.equal(v.record.signerPublicKeyHex, stockAuthor.publicKeyHex);
    assert.equal(v.routes.a2a.jsonRpcUrl, `${ref.url}/api/a2a/jsonrpc`);
    const text = await cli(["resolve", h, "--registry", ref.url, "--allow-private", "--accept-proof-v1"]);
    assert.match(text.stdout, /record proof v1 only .*descriptor UNSIGNED/);
  });
});

describe("records are checked for every value the reference's schema constrains", { timeout: 60_000 }, () => {
  const base = () => ({ ...hiveRecord(500), handle: "urn:pilox:agent:interop:values" }) as Record<string, unknown>;
  const cases: [string, (r: Record<string, any>) => void, string][] = [
    ["ttl below 60", (r) => (r["ttlSecondsRecommended"] = 30), "/ttlSecondsRecommended"],
    ["ttl above 8,640,000", (r) => (r["ttlSecondsRecommended"] = 8_640_001), "/ttlSecondsRecommended"],
    ["capability pattern", (r) => (r["capabilities"] = ["Bad Cap"]), "/capabilities/0"],
    ["negative price", (r) => (r["pricing"] = { inputTokensPerMillion: -1 }), "/pricing/inputTokensPerMillion"],
    ["unknown pricing key", (r) => (r["pricing"] = { discount: 1 }), "/pricing"],
    ["controllerDid", (r) => (r["controllerDid"] = "notadid"), "/controllerDid"],
    ["proof as an array", (r) => (r["proof"] = []), "/proof"],
    ["proof.signer not a URI", (r) => (r["proof"] = { signer: "not a uri" }), "/proof/signer"],
    ["publicKeys as an array", (r) => (r["publicKeys"] = []), "/publicKeys"],
    ["buyer input kind", (r) => (r["buyerInputs"] = [{ id: "x", label: "x", kind: "file" }]), "/buyerInputs/0/kind"],
    ["buyer input key pattern", (r) => (r["buyerInputs"] = [{ id: "x", label: "x", kind: "env", key: "1BAD" }]), "/buyerInputs/0/key"],
    ["attestation not confirmed", (r) => (r["publishAttestation"] = { confirmedAt: "2026-11-01T09:00:00Z", confirmedBuyerConfiguration: false }), "/publishAttestation/confirmedBuyerConfiguration"],
    ["empty version", (r) => (r["version"] = ""), "/version"],
    ["modality too long", (r) => (r["inputModalities"] = ["x".repeat(65)]), "/inputModalities/0"],
    ["65 capabilities", (r) => (r["capabilities"] = Array.from({ length: 65 }, (_, i) => `c${i}`)), "/capabilities"],
  ];

  it("POST answers 400 invalid_record naming the field, as the reference does", async () => {
    for (const [name, mutate, path] of cases) {
      const rec = base();
      mutate(rec);
      const r = await post(A, rec);
      assert.equal(r.status, 400, `${name}: ${r.body}`);
      assert.equal(r.json.error, "invalid_record", name);
      assert.ok(String(r.json.instancePath).startsWith(path.split("/").slice(0, 2).join("/")), `${name}: ${r.json.instancePath}`);
    }
  });

  it("agrees with the reference's schema (Ajv) on every case and on the valid record, in both families", () => {
    const ajv = referenceAjv();
    const hive = ajv.compile(referenceSchema("hive-registry-record-v1.schema.json"));
    const piloxSchema = referenceSchema("hive-registry-record-v1.schema.json");
    piloxSchema["$id"] = "pilox-registry-record-v1";
    (piloxSchema["properties"] as Record<string, unknown>)["schema"] = { const: "pilox-registry-record-v1" };
    const pilox = ajv.compile(piloxSchema);
    for (const family of ["hive-registry-record-v1", "pilox-registry-record-v1"]) {
      const validate = family.startsWith("hive") ? hive : pilox;
      const good = { ...base(), schema: family };
      assert.equal(validate(good), true, JSON.stringify(validate.errors));
      assert.equal(checkRecord(good).ok, true);
      for (const [name, mutate] of cases) {
        const rec = { ...base(), schema: family };
        mutate(rec);
        assert.equal(validate(rec), false, `${family} ${name}: the reference refuses it`);
        assert.equal(checkRecord(rec).ok, false, `${family} ${name}: so do we`);
      }
    }
  });

  it("a 70 KB record is accepted (the registry's own 1 MiB limit, not http.max_body_bytes)", async () => {
    const big = signRecord({ ...base(), handle: "urn:pilox:agent:interop:big", buyerInputs: Array.from({ length: 18 }, (_, i) => ({ id: `in${i}`, label: "x", kind: "text", description: "d".repeat(4000) })) } as unknown as RegistryRecord, author, { kid: "k1", seq: 1 });
    assert.ok(JSON.stringify(big).length > 70_000);
    const r = await post(A, big);
    assert.equal(r.status, 201, r.body);
  });

  it("re-posting an identical record succeeds with the same ETag (a publisher's retry)", async () => {
    const rec = signRecord({ ...hiveRecord(600), handle: "urn:pilox:agent:interop:retry" } as RegistryRecord, author, { kid: "k1", seq: 1 });
    const first = await post(A, rec);
    assert.equal(first.status, 201);
    const again = await post(A, rec);
    assert.deepEqual([again.status, again.json.etag], [201, first.json.etag]);
    const unsigned = { ...hiveRecord(601), handle: "urn:pilox:agent:interop:retry-unsigned" };
    const u1 = await post(A, unsigned);
    // require_proof is on: the unsigned one is refused both times, the same way.
    assert.equal(u1.status, 403);
    assert.equal((await post(A, unsigned)).status, 403);
  });
});

describe("errors and over-limit bodies on every listener", { timeout: 120_000 }, () => {
  it("the reference's error shape on its routes: error is the code", async () => {
    assert.deepEqual((await http({ port: A.port }, "GET", "/v1/nothing-here")).json, { error: "not_found", message: "no such endpoint" });
    assert.equal((await http({ port: A.port }, "GET", "/v1/records/urn:none:xxxxxxxx")).json.error, "not_found");
    const big = await http({ port: A.port }, "POST", "/v1/records", "x".repeat(2 * 1024 * 1024), auth);
    assert.equal(big.status, 413);
    assert.equal(big.json.error, "payload_too_large");
    assert.equal((await http({ port: A.port }, "POST", "/v1/a2a/jsonrpc", "x".repeat(70_000), { "content-type": "application/json" })).json.error, "payload_too_large");
  });

  it("413 and a clean close, never a reset, for slow and chunked over-limit bodies", async () => {
    const pub = { port: A.port };
    const cases: [string, Promise<{ status: number; body: string } | { error: string }>][] = [
      // Each client writes for longer than the adapter's own 500 ms clean-up window.
      ["registry, 2 MB with a length, slowly", slowPost(pub, "/v1/records", 2 * 1024 * 1024, { pauseMs: 8, headers: auth })],
      ["registry, 2 MB chunked, slowly", slowPost(pub, "/v1/records", 2 * 1024 * 1024, { chunked: true, pauseMs: 8, headers: auth })],
      ["gateway, 2 MB chunked", slowPost(pub, "/v1/a2a/jsonrpc", 2 * 1024 * 1024, { chunked: true })],
      ["gateway, 2 MB chunked, slowly", slowPost(pub, "/v1/a2a/jsonrpc", 2 * 1024 * 1024, { chunked: true, pauseMs: 8 })],
      ["public listener, unknown path, 1 MB slowly", slowPost(pub, "/v1/other", 1024 * 1024, { pauseMs: 8 })],
      ["agent API, 2 MB slowly", slowPost({ socketPath: A.sock }, "/v1/bus/publish", 2 * 1024 * 1024, { pauseMs: 8 })],
    ];
    for (const [name, p] of cases) {
      const r = await p;
      assert.ok("status" in r, `${name}: ${"error" in r ? r.error : ""}`);
      assert.equal(r.status, 413, `${name}: ${r.body}`);
    }
    // The listener still serves.
    assert.equal((await http(pub, "GET", "/healthz")).status, 200);
  });
});

describe("the hive- descriptor", { timeout: 60_000 }, () => {
  it("validates against the reference's hive-mesh-descriptor-v1 schema; our signed document is unchanged", async () => {
    const validate = referenceAjv().compile(referenceSchema("hive-mesh-descriptor-v1.schema.json"));
    for (const r of [A]) {
      const hive = await http({ port: r.port }, "GET", "/.well-known/hive-mesh.json");
      assert.equal(hive.status, 200);
      assert.equal(hive.headers["access-control-allow-origin"], "*");
      assert.equal(validate(hive.json), true, JSON.stringify(validate.errors));
      assert.equal(hive.json.federation.piloxMesh.descriptorUrl, `${r.url}/.well-known/pilox-mesh.json`);
      const ours = await http({ port: r.port }, "GET", "/.well-known/pilox-mesh.json");
      assert.equal(checkDocument(ours.json, r.key.publicKeyHex).ok, true);
      assert.equal(validate(ours.json), false, "(ours keeps its own keys, which that schema forbids)");
    }
  });

  it("a site that fronts an agent advertises its A2A endpoints ([discovery] a2a_*), in both documents", async () => {
    const D = await registry("d", `[discovery]\na2a_agent_card_url = "https://agents.example/card.json"\na2a_json_rpc_url = "https://agents.example/a2a/jsonrpc"\n`);
    try {
      const ours = (await http({ port: D.port }, "GET", "/.well-known/pilox-mesh.json")).json;
      assert.equal(ours.a2aEnabled, true);
      assert.deepEqual(ours.a2a, { agentCardUrl: "https://agents.example/card.json", jsonRpcUrl: "https://agents.example/a2a/jsonrpc" });
      assert.equal(checkDocument(ours, D.key.publicKeyHex).ok, true);
      const hive = (await http({ port: D.port }, "GET", "/.well-known/hive-mesh.json")).json;
      const validate = referenceAjv().compile(referenceSchema("hive-mesh-descriptor-v1.schema.json"));
      assert.equal(validate(hive), true, JSON.stringify(validate.errors));
      assert.deepEqual(hive.a2a, ours.a2a);
    } finally {
      await D.app.stop(200);
    }
    // Half of the pair is refused by check-config, naming the missing key.
    const half = s.write("half.toml", `[discovery]\na2a_agent_card_url = "https://agents.example/card.json"\n`);
    const r = await cli(["check-config", "--config", half, "--state-dir", s.path("half-state"), "-q"]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /discovery\.a2a_json_rpc_url: set both/);
  });
});
