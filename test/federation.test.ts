/**
 * Two appliances federated in one test (separate ports, Redis servers, identities): messages
 * flow both ways on allowed channels only; hostile requests are refused and audited; key
 * rotation loses nothing; a removed peer is refused; 5,000 messages cross a restart of B.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createHmac } from "node:crypto";
import type { Delivery } from "../src/bus/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { mintToken, verifyAuditFile } from "../src/federation/index.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { counterValue, waitFor } from "./helpers/bus.ts";
import { cli } from "./helpers/cli.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
let redisA: TestRedis, redisB: TestRedis;
let a: Appliance, b: Appliance;
let portA: number, portB: number;
let keyA: Ed25519Key, keyB: Ed25519Key, keyB2: Ed25519Key;
const originA = () => `http://127.0.0.1:${portA}`;
const originB = () => `http://127.0.0.1:${portB}`;

function config(name: "a" | "b", o: { port: number; origin: string; redis: string; secret: string; keyFile: string; peer: string; peerKeys: string[]; accept: string[]; forward: string[]; durable?: string[] }): string {
  return writeSite({
    dir: s.dir, name, port: o.port, origin: o.origin, keyFile: o.keyFile, secret: o.secret, redis: o.redis, blockMs: 500,
    durable: o.durable ?? [],
    federation: "batch_size = 200\nper_ip_rate = 10000",
    peer: { origin: o.peer, keys: o.peerKeys, accept: o.accept, forward: o.forward, ratePerSecond: 100000 },
  });
}

const cfgA = (peerKeys = [keyB.publicKeyHex]) =>
  config("a", { port: portA, origin: originA(), redis: redisA.url, secret: SECRET_A, keyFile: s.path("a-id.key"), peer: originB(), peerKeys, accept: ["b2a"], forward: ["a2b", "a-private"] });
const cfgB = (keyFile = s.path("b-id.key")) =>
  config("b", { port: portB, origin: originB(), redis: redisB.url, secret: SECRET_B, keyFile, peer: originA(), peerKeys: [keyA.publicKeyHex], accept: ["a2b"], forward: ["b2a"], durable: ["a2b"] });

before(async () => {
  [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  [portA, portB] = [await freePort(), await freePort()];
  keyA = createKeyFile(s.path("a-id.key"));
  keyB = createKeyFile(s.path("b-id.key"));
  keyB2 = createKeyFile(s.path("b-id2.key"));
  cfgA();
  cfgB();
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  await waitFor(() => a.bus.backend.isReady() && b.bus.backend.isReady());
});
after(async () => {
  await Promise.all([a?.stop(200), b?.stop(200)]);
  await Promise.all([redisA.stop(), redisB.stop()]);
  s.cleanup();
});

function collect(app: Appliance, channel: string) {
  const got: Delivery[] = [];
  const sub = app.bus.subscribe(channel, (d) => void got.push(d));
  return { got, sub };
}

describe("two federated appliances", () => {
  it("messages flow both ways on allowed channels, with their origin recorded", async () => {
    const atB = collect(b, "a2b");
    const atA = collect(a, "b2a");
    const privateAtB = collect(b, "a-private");
    await Promise.all([atB.sub, atA.sub, privateAtB.sub]);
    const sent = await a.bus.publish("a2b", { hello: "from a" });
    await a.bus.publish("a-private", { secret: 1 });
    await b.bus.publish("b2a", { hello: "from b" });
    await waitFor(() => atB.got.length === 1 && atA.got.length === 1, 15_000, "both directions");
    assert.equal(atB.got[0]!.message["hello"], "from a");
    assert.equal(atB.got[0]!.eventId, sent.eventId, "the event id crosses the meshes");
    assert.equal(atB.got[0]!.ext?.origin, originA());
    assert.equal(atB.got[0]!.kid, "b1", "re-sealed with B's own bus key");
    assert.equal(atA.got[0]!.ext?.origin, originB());
    // a-private is forwarded by A but B does not accept it
    await waitFor(async () => (await counterValue(b.metrics, "pilox_mesh_federation_requests_total", { reason: "channel_not_allowed" })) >= 1, 10_000, "refusal counted");
    assert.equal(privateAtB.got.length, 0);
    for (const c of [atB, atA, privateAtB]) await (await c.sub).close();
  });

  it("peers and status show keys, queue and last contact", async () => {
    const st = a.federation.status();
    assert.equal(st.peers.length, 1);
    assert.equal(st.peers[0]!.origin, originB());
    assert.equal(st.peers[0]!.keys[0]!.kid, keyB.kid);
    assert.ok(st.peers[0]!.lastContact);
    const r = await cli(["peers", "--socket", s.path("a.sock")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^PEER\\s+TRANSPORT.*\\n${originB().replace(/\./g, "\\.")}\\s+relay\\s+${keyB.kid.slice(0, 8)}`, "m"));
    const doc = await http({ port: portA }, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(doc.json.federation.enabled, true);
    assert.equal(doc.json.federationEndpoints.relay, `${originA()}/v1/federation/relay`);
  });
});

describe("hostile relay requests are refused and audited", () => {
  const body = JSON.stringify({ messages: [{ channel: "a2b", message: { x: 1, meshMeta: { v: 1, producer: "t", eventId: "hostile-1" } } }] });
  const post = (token: string, payload = body, header = "x-pilox-federation-jwt") =>
    http({ port: portB }, "POST", "/v1/federation/relay", payload, { "content-type": "application/json", [header]: token });
  const mint = (o: Partial<Parameters<typeof mintToken>[0]> = {}) => mintToken({ key: keyA, iss: originA(), aud: originB(), ttlSeconds: 60, body, ...o });

  it("a captured request replayed", async () => {
    const t = await mint();
    assert.equal((await post(t)).status, 200);
    const again = await post(t);
    assert.equal(again.status, 401);
    assert.deepEqual(again.json, { error: { code: "unauthorized", message: "federation request refused" } }, "generic body, no oracle");
  });
  it("expired, one-year, other audience, unknown key, swapped body, alg none, HS256", async () => {
    const now = Date.now();
    const cases: [string, string, string?][] = [
      ["expired", await mint({ now: now - 600_000 })],
      ["one-year", await mint({ ttlSeconds: 365 * 86_400 })],
      ["audience", await mint({ aud: "https://elsewhere.example" })],
      ["removed key", await mint({ key: keyB2 })],
      ["swapped body", await mint(), body.replace("hostile-1", "hostile-2")],
    ];
    const c = Buffer.from(JSON.stringify({ iss: originA(), sub: "federation-peer", jti: "j-none", iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 60, aud: originB() })).toString("base64url");
    const hNone = Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url");
    const hHs = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
    cases.push(["alg none", `${hNone}.${c}.`], ["HS256", `${hHs}.${c}.${createHmac("sha256", "x").update(`${hHs}.${c}`).digest("base64url")}`]);
    for (const [name, token, payload] of cases) {
      const r = await post(token, payload);
      assert.equal(r.status, 401, name);
    }
    const lines = readFileSync(s.path("b-state", "federation", "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const reasons = lines.filter((l) => l.outcome === "refused" && l.direction === "inbound").map((l) => l.reason);
    for (const r of ["replayed", "expired", "lifetime_too_long", "wrong_audience", "bad_signature", "body_mismatch", "alg_not_allowed"]) assert.ok(reasons.includes(r), `${r} audited (${reasons})`);
    const check = await cli(["audit", "verify", s.path("b-state", "federation", "audit.jsonl")]);
    assert.equal(check.code, 0, check.stdout);
  });
  it("a batch is published in its order; a repeated event id in it counts once; refusals keep their index", async (t) => {
    const atB = collect(b, "a2b");
    await atB.sub;
    // Closed whatever happens: a subscriber left behind in B's group would take entries from later tests.
    t.after(async () => (await atB.sub).close());
    const msg = (id: string, n: number, channel = "a2b") => ({ channel, message: { k: n, meshMeta: { v: 1, producer: "t", eventId: id } } });
    const payload = JSON.stringify({ messages: [msg("order-1", 1), msg("order-2", 2), msg("order-3", 3, "a-private"), msg("order-1", 1), msg("order-4", 4), msg("order-5", 5, "a-private")] });
    const r = await post(await mint({ body: payload }), payload);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { accepted: 3, duplicates: 1, refused: [{ index: 2, reason: "channel_not_allowed" }, { index: 5, reason: "channel_not_allowed" }] });
    // a2b is durable at B: entries of earlier tests may come to this subscriber too.
    const ours = () => atB.got.filter((d) => d.eventId.startsWith("order-"));
    await waitFor(() => ours().length >= 3, 10_000, "three at B");
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(ours().map((d) => d.message["k"]), [1, 2, 4]);
    // Sent again (a retry after a lost answer): all of it is known.
    const again = await post(await mint({ body: payload }), payload);
    assert.deepEqual(again.json, { accepted: 0, duplicates: 4, refused: [{ index: 2, reason: "channel_not_allowed" }, { index: 5, reason: "channel_not_allowed" }] });
  });
  it("an oversized body is refused before any token check", async () => {
    const r = await post(await mint(), "x".repeat(2 * 1024 * 1024));
    assert.equal(r.status, 413);
  });
  it("an edited audit log is detected", async () => {
    const f = s.path("audit-copy.jsonl");
    const lines = readFileSync(s.path("b-state", "federation", "audit.jsonl"), "utf8").split("\n");
    // Flip the first line's direction, whichever it is: B may have written an outbound line first.
    const first = lines[0]!;
    lines[0] = first.includes('"inbound"') ? first.replace('"inbound"', '"outbound"') : first.replace('"outbound"', '"inbound"');
    assert.notEqual(lines[0], first, "the edit changed the line");
    s.write("audit-copy.jsonl", lines.join("\n"));
    const r = verifyAuditFile(f);
    assert.equal(r.ok, false);
  });
});

describe("rotation and removal", () => {
  it("B moves to its next key: A accepts B throughout, zero refused", async () => {
    const before = await counterValue(a.metrics, "pilox_mesh_federation_requests_total", { reason: "bad_signature" });
    const atA = collect(a, "b2a");
    await atA.sub;
    // 1. A learns B's next key; 2. B switches to it; messages flow before, between and after.
    await b.bus.publish("b2a", { step: 1 });
    cfgA([keyB.publicKeyHex, keyB2.publicKeyHex]);
    assert.deepEqual(await a.reload(), { ok: true });
    await b.bus.publish("b2a", { step: 2 });
    cfgB(s.path("b-id2.key"));
    assert.deepEqual(await b.reload(), { ok: true });
    await b.bus.publish("b2a", { step: 3 });
    await waitFor(() => atA.got.length === 3, 15_000, "three messages");
    assert.deepEqual(atA.got.map((d) => d.message["step"]).sort(), [1, 2, 3]);
    assert.equal(await counterValue(a.metrics, "pilox_mesh_federation_requests_total", { reason: "bad_signature" }), before);
    // 3. A drops the old key: a token signed with it is refused now.
    cfgA([keyB2.publicKeyHex]);
    assert.deepEqual(await a.reload(), { ok: true });
    const body = JSON.stringify({ messages: [] });
    const old = await mintToken({ key: keyB, iss: originB(), aud: originA(), ttlSeconds: 60, body });
    assert.equal((await http({ port: portA }, "POST", "/v1/federation/relay", body, { "content-type": "application/json", "x-pilox-federation-jwt": old })).status, 401);
    await (await atA.sub).close();
  });

  it("a peer removed from the configuration is refused after reload", async () => {
    const body = JSON.stringify({ messages: [] });
    const t = await mintToken({ key: keyA, iss: originA(), aud: originB(), ttlSeconds: 60, body });
    const cfg = readFileSync(s.path("b.toml"), "utf8");
    s.write("b.toml", cfg.slice(0, cfg.indexOf("[[federation.peers]]")));
    // Removing a peer is refused unless the operator says so (exit 78, the peer named).
    const refused = await cli(["reload", "--socket", s.path("b.sock")]);
    assert.equal(refused.code, 78, refused.stderr);
    assert.match(refused.stderr, new RegExp(`federation peers ${originA()}[\\s\\S]*--allow-removals`));
    const r = await cli(["reload", "--allow-removals", "--socket", s.path("b.sock")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await http({ port: portB }, "POST", "/v1/federation/relay", body, { "content-type": "application/json", "x-pilox-federation-jwt": t })).status, 401);
    s.write("b.toml", cfg);
    assert.deepEqual(await b.reload(), { ok: true });
  });
});

describe("durability", () => {
  // On B, a2b is durable: what B accepted while nobody was subscribed waits in its stream.
  it("5,000 messages A→B while B is stopped and restarted: all delivered, none twice", { timeout: 180_000 }, async () => {
    const TOTAL = 5_000;
    const counts = new Map<number, number>();
    const onB = (app: Appliance) =>
      app.bus.subscribe("a2b", (d) => {
        const n = d.message["n"];
        if (typeof n === "number") counts.set(n, (counts.get(n) ?? 0) + 1); // earlier tests' messages also wait in the stream
      });
    let sub = await onB(b);
    for (let n = 0; n < TOTAL; n++) {
      await a.bus.publish("a2b", { n });
      if (n === 1_500) {
        await sub.close();
        await b.stop(200);
      }
      if (n === 3_500) {
        b = await startAppliance(s.path("b.toml"), s.path("b-state"));
        await waitFor(() => b.bus.backend.isReady());
        sub = await onB(b);
      }
    }
    await waitFor(() => counts.size === TOTAL, 120_000, `all ${TOTAL} (have ${counts.size})`);
    await new Promise((r) => setTimeout(r, 1_500));
    const twice = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
    assert.deepEqual(twice.slice(0, 10), []);
    assert.equal(a.federation.status().peers[0]!.queue.messages, 0);
    await sub.close();
  });
});

describe("peers from a signed manifest", () => {
  it("admits the listed peer; a newer manifest removes it; replaying the older one does not bring it back", { timeout: 60_000 }, async () => {
    const signer = createKeyFile(s.path("manifest-signer.key"));
    const { signManifest } = await import("../src/federation/index.ts");
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const v1 = signManifest({ v: 1, peers: [{ origin: originA(), ed25519PublicKeyHex: keyA.publicKeyHex }] }, signer, { seq: 1, expiresAt });
    const v2 = signManifest({ v: 1, peers: [] }, signer, { seq: 2, expiresAt });
    const manifestFile = s.write("manifest.json", JSON.stringify(v1));
    // B trusts A only through the manifest now (no static peer for A).
    const cfg = readFileSync(s.path("b.toml"), "utf8");
    // The peer entry is last in the file (test/helpers/site.ts): everything before it stays.
    const base = cfg.slice(0, cfg.indexOf("[[federation.peers]]"));
    assert.match(base, /\[\[bus\.channels\]\]\nname = "a2b"/);
    s.write("b.toml", `${base}[federation.manifest]\nurl = "file://${manifestFile}"\nsigner_public_keys = ["${signer.publicKeyHex}"]\naccept_channels = ["a2b"]\n`);
    // The static entry for A goes (A comes back through the manifest): a removal, said explicitly.
    assert.deepEqual(await b.reload({ allowRemovals: true }), { ok: true });
    const body = JSON.stringify({ messages: [{ channel: "a2b", message: { via: "manifest", meshMeta: { v: 1, producer: "t", eventId: `m-${Date.now()}` } } }] });
    const send = async () =>
      (await http({ port: portB }, "POST", "/v1/federation/relay", body, { "content-type": "application/json", "x-pilox-federation-jwt": await mintToken({ key: keyA, iss: originA(), aud: originB(), ttlSeconds: 60, body }) })).status;
    assert.equal(await send(), 200);
    assert.equal(b.federation.status().manifest?.seq, 1);

    s.write("manifest.json", JSON.stringify(v2));
    assert.deepEqual(await b.reload(), { ok: true });
    assert.equal(await send(), 401, "removed from the manifest");

    s.write("manifest.json", JSON.stringify(v1)); // the older roster, replayed
    assert.deepEqual(await b.reload(), { ok: true });
    assert.equal(await send(), 401, "rollback refused");
    const st = b.federation.status().manifest!;
    assert.equal(st.lastSyncOk, false);
    assert.match(st.lastError!, /rollback/);
    assert.equal(st.seq, 2);
    const doc = await http({ port: portB }, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(doc.json.signedManifest.url, `file://${manifestFile}`);
  });
});
