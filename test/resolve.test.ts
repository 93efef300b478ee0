/**
 * Resolution against registries and descriptors served by test appliances and stand-ins: a good
 * route, a descriptor signed by a key the record does not list, a document with a bad signature,
 * an expired record, a registry that lies; the gateway's handle route; roles in the documents.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { Ajv } from "ajv";
import type { Appliance } from "../src/daemon/appliance.ts";
import { signDocument } from "../src/discovery/index.ts";
import { keyFromSeedHex, type Ed25519Key } from "../src/identity/index.ts";
import { signRecord } from "../src/registry/proof.ts";
import type { RegistryRecord } from "../src/registry/record.ts";
import { resolveHandle } from "../src/resolve/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { cli, ROOT } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const s = scratch();
const TOKEN = "registry-write-token-0123456789";
s.write("token", TOKEN);
const agentKey = keyFromSeedHex("51".repeat(32));
const otherKey = keyFromSeedHex("52".repeat(32));
let up: TestUpstream;
let reg: { app: Appliance; port: number; url: string };
let gw: { app: Appliance; port: number };
let docs: Server;
let docsUrl: string;
let liar: Server;
let liarUrl: string;
const records: Record<string, RegistryRecord> = {};

function doc(key: Ed25519Key, jsonRpcUrl: string) {
  return signDocument(
    {
      schema: "pilox-mesh-descriptor-v1",
      instanceOrigin: docsUrl,
      a2aEnabled: true,
      a2a: { agentCardUrl: `${docsUrl}/card.json`, jsonRpcUrl },
      federation: { enabled: false, localEd25519PublicKeyHex: key.publicKeyHex },
      instanceKeys: { current: { kid: key.kid, alg: "Ed25519", publicKeyHex: key.publicKeyHex }, next: null },
    },
    key,
  );
}

before(async () => {
  up = await startUpstream();
  docs = createServer((q, r) => {
    const good = doc(agentKey, `${up.url}/api/a2a/jsonrpc/public`);
    const body = q.url === "/bad.json" ? { ...good, instanceOrigin: "https://evil.example" } : good;
    r.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=120" }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => docs.listen(0, "127.0.0.1", r));
  docsUrl = `http://127.0.0.1:${(docs.address() as { port: number }).port}`;
  const port = await freePort();
  const cfg = s.write("reg.toml", `[instance]\norigin = "http://127.0.0.1:${port}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("reg.sock")}"\n[registry]\nenabled = true\nwrite_token_file = "${s.path("token")}"\nsync_interval_seconds = 3600\n`);
  reg = { app: await startAppliance(cfg, s.path("reg-state")), port, url: `http://127.0.0.1:${port}` };
  const mk = (name: string, key: Ed25519Key, descriptor: string, extra: Record<string, unknown> = {}) =>
    (records[name] = signRecord({ schema: "pilox-registry-record-v1", handle: `urn:pilox:agent:resolve:${name}`, updatedAt: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"), agentCardUrl: `${docsUrl}/card.json`, meshDescriptorUrl: `${docsUrl}${descriptor}`, ...extra } as RegistryRecord, key, { kid: "k1", seq: 1 }));
  for (const r of [mk("good", agentKey, "/doc.json"), mk("otherkey", otherKey, "/doc.json"), mk("baddoc", agentKey, "/bad.json"), mk("expired", agentKey, "/doc.json", { validUntil: new Date(Date.now() - 1_000).toISOString() })]) {
    const p = await http({ port: reg.port }, "POST", "/v1/records", JSON.stringify(r), { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" });
    assert.equal(p.status, 201, p.body);
  }
  // A registry that lies: it serves the good record with its agent card swapped.
  liar = createServer((_q, r) => r.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ...records["good"], agentCardUrl: "https://evil.example/card.json" })));
  await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
  liarUrl = `http://127.0.0.1:${(liar.address() as { port: number }).port}`;
  const gport = await freePort();
  const gcfg = s.write("gw.toml", `[http]\nlisten = "127.0.0.1:${gport}"\n[api]\nsocket = "${s.path("gw.sock")}"\n[gateway]\nenabled = true\nregistries = ["${liarUrl}", "${reg.url}"]\nresolve_allow_private = true\n`);
  gw = { app: await startAppliance(gcfg, s.path("gw-state")), port: gport };
});
after(async () => {
  await Promise.all([reg.app.stop(200), gw.app.stop(200), up.close()]);
  docs.close();
  liar.close();
  s.cleanup();
});

const opts = () => ({ registries: [liarUrl, reg.url], allowPrivate: true });

describe("resolution", () => {
  it("a good route: record verified, descriptor signed by the record's key, routes as advertised; the lying registry refused, the next one used", async () => {
    const r = await resolveHandle("urn:pilox:agent:resolve:good", opts());
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.record.registry, reg.url);
    assert.equal(r.value.routes.a2a?.jsonRpcUrl, `${up.url}/api/a2a/jsonrpc/public`);
    assert.equal(r.value.descriptor.publicKeyHex, agentKey.publicKeyHex);
    assert.deepEqual(r.value.refused.map((x) => [x.source, x.reason]), [[liarUrl, "bad_signature"]]);
    const c = await cli(["resolve", "urn:pilox:agent:resolve:good", "--registry", liarUrl, "--registry", reg.url, "--allow-private"]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^a2a: +http:\/\/127\.0\.0\.1:\d+\/api\/a2a\/jsonrpc\/public$/m);
    assert.match(c.stdout, /^refused: .*bad_signature$/m);
    const j = JSON.parse((await cli(["resolve", "urn:pilox:agent:resolve:good", "--registry", reg.url, "--allow-private", "--json"])).stdout);
    assert.equal(j.routes.a2a.jsonRpcUrl, `${up.url}/api/a2a/jsonrpc/public`);
  });

  it("refuses a descriptor signed by a key the record does not list, a document with a bad signature, an expired record", async () => {
    const cases: [string, RegExp][] = [
      ["otherkey", /descriptor_key_mismatch/],
      ["baddoc", /descriptor: signature does not verify/],
      ["expired", /record_expired/],
    ];
    for (const [name, re] of cases) {
      const r = await resolveHandle(`urn:pilox:agent:resolve:${name}`, { registries: [reg.url], allowPrivate: true });
      assert.equal(r.ok, false, name);
      assert.match(JSON.stringify(r.ok ? "" : r.refused), re, name);
    }
    const c = await cli(["resolve", "urn:pilox:agent:resolve:expired", "--registry", reg.url, "--allow-private"]);
    assert.equal(c.code, 1);
    const none = await cli(["resolve", "urn:pilox:agent:resolve:good", "--registry", `http://127.0.0.1:${await freePort()}`, "--allow-private"]);
    assert.equal(none.code, 69);
    const ssrf = await resolveHandle("urn:pilox:agent:resolve:good", { registries: [reg.url] });
    assert.equal(ssrf.ok, false, "loopback refused without allowPrivate");
    // The guard's refusal is not "unreachable" (69): it names the guard and how to allow it.
    const guarded = await cli(["resolve", "urn:pilox:agent:resolve:good", "--registry", reg.url]);
    assert.equal(guarded.code, 1, guarded.stderr);
    assert.match(guarded.stderr, /refused_private_address: .*SSRF guard .*--allow-private.*gateway\.resolve_allow_private/);
  });
});

describe("the gateway's handle route", () => {
  it("POST /v1/a2a/{handle}/jsonrpc goes to the agent the handle resolves to", async () => {
    const r = await http({ port: gw.port }, "POST", `/v1/a2a/${encodeURIComponent("urn:pilox:agent:resolve:good")}/jsonrpc`, JSON.stringify({ jsonrpc: "2.0", method: "tasks/get", id: 1 }), { "content-type": "application/json" });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.result, { echo: "tasks/get" });
    assert.equal(up.last!.headers["x-forwarded-for"], "127.0.0.1");
    const missing = await http({ port: gw.port }, "POST", `/v1/a2a/${encodeURIComponent("urn:pilox:agent:resolve:nobody")}/jsonrpc`, "{}", { "content-type": "application/json" });
    assert.equal(missing.status, 404);
  });

  it("the discovery documents list the roles each instance runs, and validate against the schema", async () => {
    const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(`${ROOT}/docs/discovery.schema.json`, "utf8")));
    const r = (await http({ port: reg.port }, "GET", "/.well-known/pilox-mesh.json")).json;
    const g = (await http({ port: gw.port }, "GET", "/.well-known/pilox-mesh.json")).json;
    for (const d of [r, g]) assert.ok(validate(structuredClone(d)), JSON.stringify(validate.errors));
    assert.equal(r.roles.registry.url, reg.url);
    assert.equal(r.roles.gateway, null);
    assert.match(g.roles.gateway.jsonRpcUrl, /\/v1\/a2a\/jsonrpc$/);
  });
});
