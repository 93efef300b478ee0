/**
 * Issue 12's federation items with two appliances on real Redis servers: batches bounded by
 * the peer's advertised body limit, split on 413, a message that can never fit dead-lettered
 * while the rest flow; a deep relay batch refused whole; refusals aggregated in the audit log.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Delivery } from "../src/bus/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { mintToken, verifyAuditFile } from "../src/federation/index.ts";
import { queueDirFor } from "../src/federation/outbound.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { counterValue, waitFor } from "./helpers/bus.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
let redisA: TestRedis, redisB: TestRedis;
let a: Appliance, b: Appliance;
let portA: number, portB: number;
let keyA: Ed25519Key, keyB: Ed25519Key;
const originA = () => `http://127.0.0.1:${portA}`;
const originB = () => `http://127.0.0.1:${portB}`;
const got: Delivery[] = [];

function writeB(maxBody: number): void {
  s.write(
    "b.toml",
    `[instance]\norigin = "${originB()}"\nkey_file = "${s.path("b-id.key")}"\n[http]\nlisten = "127.0.0.1:${portB}"\n[api]\nsocket = "${s.path("b.sock")}"\n` +
      `[bus.redis]\nurl = "${redisB.url}"\nblock_ms = 500\n[[bus.keys]]\nid = "b1"\nsecret_file = "${s.path("b-bus.key")}"\n` +
      `[federation]\nmax_body_bytes = ${maxBody}\nper_ip_rate = 100000\naudit_window_seconds = 1\n` +
      `[[federation.peers]]\norigin = "${originA()}"\npublic_keys = ["${keyA.publicKeyHex}"]\naccept_channels = ["a2b"]\nrate_per_second = 100000\n`,
  );
}

before(async () => {
  [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  [portA, portB] = [await freePort(), await freePort()];
  keyA = createKeyFile(s.path("a-id.key"));
  keyB = createKeyFile(s.path("b-id.key"));
  s.write("a-bus.key", SECRET_A);
  s.write("b-bus.key", SECRET_B);
  s.write(
    "a.toml",
    `[instance]\norigin = "${originA()}"\nkey_file = "${s.path("a-id.key")}"\n[http]\nlisten = "127.0.0.1:${portA}"\n[api]\nsocket = "${s.path("a.sock")}"\n` +
      `[bus.redis]\nurl = "${redisA.url}"\nblock_ms = 500\n[[bus.keys]]\nid = "a1"\nsecret_file = "${s.path("a-bus.key")}"\n` +
      `[[bus.channels]]\nname = "a2b"\ndurable = true\n[federation]\nbatch_size = 1000\n` +
      `[[federation.peers]]\norigin = "${originB()}"\npublic_keys = ["${keyB.publicKeyHex}"]\nforward_channels = ["a2b"]\nrate_per_second = 100000\n`,
  );
  writeB(16 * 1024);
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  await waitFor(() => a.bus.backend.isReady() && b.bus.backend.isReady());
  await b.bus.subscribe("a2b", (d) => void got.push(d));
});
after(async () => {
  await Promise.all([a?.stop(200), b?.stop(200)]);
  await Promise.all([redisA.stop(), redisB.stop()]);
  s.cleanup();
});

const peerStatus = () => a.federation.status().peers[0]!;
const auditLines = (who: "a" | "b") =>
  readFileSync(s.path(`${who}-state`, "federation", "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

describe("outbound batches and the peer's body limit", () => {
  it("batches are built to the limit the peer advertises: 100 messages of 1 KB arrive, no 413", { timeout: 30_000 }, async () => {
    const start = got.length;
    for (let i = 0; i < 100; i++) await a.bus.publish("a2b", { i, pad: "p".repeat(1024) });
    await waitFor(() => got.length - start === 100, 20_000, "100 delivered");
    assert.equal(peerStatus().batchMaxBytes, 16 * 1024);
    assert.ok(!auditLines("a").some((l) => l["reason"] === "http_413"));
  });

  it("a peer whose limit shrank answers 413: the batch is split and everything arrives", { timeout: 30_000 }, async () => {
    writeB(4096);
    assert.deepEqual(await b.reload(), { ok: true });
    const start = got.length;
    for (let i = 0; i < 50; i++) await a.bus.publish("a2b", { j: i, pad: "p".repeat(1024) });
    await waitFor(() => got.length - start === 50, 20_000, "50 delivered");
    assert.deepEqual(got.slice(start).map((d) => d.message["j"]), [...Array(50).keys()]);
    assert.ok(auditLines("a").some((l) => l["reason"] === "http_413"));
    assert.ok(peerStatus().batchMaxBytes <= 4096);
  });

  it("a message too large for the peer even alone is dead-lettered; the ones behind it arrive", { timeout: 30_000 }, async () => {
    const start = got.length;
    await a.bus.publish("a2b", { big: "b".repeat(10 * 1024) });
    for (let i = 0; i < 5; i++) await a.bus.publish("a2b", { k: i });
    await waitFor(() => got.length - start === 5, 20_000, "5 delivered");
    const dead = s.path("a-state", "federation", "outbound", queueDirFor("", originB()).split("/").pop()!, "dead.jsonl");
    assert.ok(existsSync(dead));
    const entry = JSON.parse(readFileSync(dead, "utf8").trim()) as { reason: string; entry: { message: { big: string } } };
    assert.equal(entry.reason, "too_large_for_peer");
    assert.equal(entry.entry.message.big.length, 10 * 1024);
    assert.equal(peerStatus().deadLettered, 1);
  });
});

describe("discovery while federation is on", () => {
  it("wanMesh is the reference's roster summary; the public status has no peers or errors", async () => {
    const doc = (await http({ port: portB }, "GET", "/.well-known/pilox-mesh.json")).json;
    assert.deepEqual(doc.federation.wanMesh, {
      publicDescriptorPath: "/.well-known/pilox-mesh.json",
      maxPeers: 10_000,
      signedManifestConfigured: false,
      staticPeerCount: 1,
      manifestPeerCount: 0,
      manifestLastSyncOk: null,
      manifestIssueCategory: null,
    });
    const st = (await http({ port: portB }, "GET", "/v1/federation/status")).json;
    assert.equal(st.enabled, true);
    assert.deepEqual(st.wanMesh, doc.federation.wanMesh);
    assert.ok(!JSON.stringify(st).includes(originA()), "no peer origins in public");
  });
});

describe("hostile relay requests", () => {
  const relay = async (body: string) => {
    const t = await mintToken({ key: keyA, iss: originA(), aud: originB(), ttlSeconds: 60, body });
    return http({ port: portB }, "POST", "/v1/federation/relay", body, { "content-type": "application/json", "x-pilox-federation-jwt": t });
  };

  it("a batch with one deeply nested message is refused whole with 400: none of it is published", async () => {
    const start = got.length;
    let deep = "1";
    for (let i = 0; i < 100; i++) deep = `[${deep}]`;
    const body = `{"messages":[{"channel":"a2b","message":{"ok":1,"meshMeta":{"v":1,"producer":"p","eventId":"e-ok"}}},{"channel":"a2b","message":{"d":${deep},"meshMeta":{"v":1,"producer":"p","eventId":"e-deep"}}}]}`;
    const r = await relay(body);
    assert.equal(r.status, 400);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.length, start);
  });

  it("1,000 refused requests from one client make a line per window, not a thousand; 413s are audited and counted", { timeout: 30_000 }, async () => {
    const before = auditLines("b").length;
    const tooLarge = await counterValue(b.metrics, "pilox_mesh_federation_requests_total", { reason: "payload_too_large" });
    const t0 = Date.now();
    for (let i = 0; i < 1_000; i++) {
      const r = await http({ port: portB }, "POST", "/v1/federation/relay", "{}", { "content-type": "application/json", "x-pilox-federation-jwt": "not.a.token" });
      assert.equal(r.status, 401);
    }
    const windows = Math.ceil((Date.now() - t0) / 1000) + 1;
    const big = await http({ port: portB }, "POST", "/v1/federation/relay", "x".repeat(8 * 1024), { "content-type": "application/json" });
    assert.equal(big.status, 413);
    await new Promise((r) => setTimeout(r, 1_500)); // the last window ends
    const added = auditLines("b").slice(before);
    const malformed = added.filter((l) => l["reason"] === "malformed");
    // Every refusal is accounted for: a plain line stands for one, an aggregated one for `count`.
    assert.equal(malformed.reduce((n, l) => n + (l["aggregated"] ? (l["count"] as number) : 1), 0), 1_000);
    assert.ok(malformed.length <= 2 * windows, `${malformed.length} lines for ${windows} windows`);
    assert.ok(added.some((l) => l["reason"] === "payload_too_large"));
    assert.equal(await counterValue(b.metrics, "pilox_mesh_federation_requests_total", { reason: "payload_too_large" }), tooLarge + 1);
    const check = verifyAuditFile(s.path("b-state", "federation", "audit.jsonl"));
    assert.equal(check.ok, true);
  });
});

describe("consumer groups of peers that went away", () => {
  it("a peer removed by reload takes its consumer group along; a group of no configured peer is reported in status", { timeout: 30_000 }, async () => {
    const { Redis } = await import("ioredis");
    const r = new Redis(redisA.url);
    try {
      const key = "pilox-mesh:stream:a2b";
      const group = `federation-${queueDirFor("", originB()).split("/").pop()}`;
      const names = async () => ((await r.call("XINFO", "GROUPS", key)) as unknown[][]).map((g) => String(g[1]));
      assert.ok((await names()).includes(group));
      await r.xgroup("CREATE", key, "federation-0123456789abcdef", "$");
      const cfg = readFileSync(s.path("a.toml"), "utf8");
      s.write("a.toml", cfg.slice(0, cfg.indexOf("[[federation.peers]]")));
      assert.deepEqual(await a.reload({ allowRemovals: true }), { ok: true });
      assert.ok(!(await names()).includes(group), "the removed peer's group is gone");
      const orphans = a.federation.status().orphanedGroups;
      assert.deepEqual(orphans.map((o) => [o.channel, o.group]), [["a2b", "federation-0123456789abcdef"]]);
      s.write("a.toml", cfg);
      assert.deepEqual(await a.reload(), { ok: true });
      assert.ok((await names()).includes(group), "re-created with the peer");
    } finally {
      r.disconnect();
    }
  });
});
