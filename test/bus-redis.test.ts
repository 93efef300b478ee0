/** The signed bus over a real Redis: interop with stock Pilox, every refusal, rotation, faults. */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { after, before, describe, it } from "node:test";
import { macV1, sealMessage, type MeshBus } from "../src/bus/index.ts";
import { collector, counterValue, makeBus, startReady, untilReady, waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";
import { vectors } from "./helpers/vectors.ts";

const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const k2 = { id: "k2", secret: Buffer.from(SECRET_B) };
const spec = { id: "spec", secret: Buffer.from(vectors.bus.secret) };

let redis: TestRedis;
let raw: Redis;
const buses: MeshBus[] = [];
const s = scratch();

before(async () => {
  redis = await startRedis({ aof: true });
  raw = new Redis(redis.url, { maxRetriesPerRequest: null });
});
after(async () => {
  for (const b of buses) await b.close().catch(() => {});
  raw.disconnect();
  await redis.stop();
  s.cleanup();
});

function bus(o: Parameters<typeof makeBus>[0]) {
  const r = makeBus({ url: redis.url, ...o });
  buses.push(r.bus);
  return r;
}

describe("pub/sub interop and verification", () => {
  it("delivers our own sealed messages end to end", async () => {
    const { bus: pub } = bus({ keys: [k1] });
    const { bus: sub } = bus({ keys: [k1] });
    await startReady(pub, sub);
    const c = collector();
    await sub.subscribe("agents:chat", c.handler);
    const r = await pub.publish("agents:chat", { text: "hello" });
    await waitFor(() => c.got.length === 1);
    assert.equal(c.got[0]!.eventId, r.eventId);
    assert.equal(c.got[0]!.message["text"], "hello");
    assert.equal(c.got[0]!.kid, "k1");
  });

  it("accepts a stock Pilox producer's message on the pilox channel and its hive alias", async () => {
    const { bus: sub } = bus({ keys: [spec] });
    await sub.start();
    await untilReady(sub);
    const c = collector();
    await sub.subscribe("pilox:system:events", c.handler);
    await raw.publish("pilox:system:events", JSON.stringify(stockWire()));
    const hive = sealMessage("hive:system:events", { ...vectors.bus.core, timestamp: new Date().toISOString(), meshMeta: { ...vectors.bus.meshMeta, eventId: HIVE_ID } }, spec, { v1Only: true });
    await raw.publish("hive:system:events", JSON.stringify(hive));
    // The vector itself (February's timestamp) is past the freshness window: refused as stale.
    await raw.publish("pilox:system:events", JSON.stringify(vectors.bus.wire));
    await waitFor(() => c.got.length === 2);
    assert.deepEqual(c.got.map((d) => [d.channel, d.eventId]), [
      ["pilox:system:events", vectors.bus.meshMeta.eventId],
      ["pilox:system:events", HIVE_ID],
    ]);
  });

  it("our v1-form messages verify with the stock algorithm (spec secret)", async () => {
    const { bus: pub } = bus({ keys: [spec] });
    await pub.start();
    await untilReady(pub);
    const listener = raw.duplicate();
    const got: string[] = [];
    await listener.subscribe("pilox:agent:status");
    listener.on("message", (_ch, m) => got.push(m));
    await pub.publish("pilox:agent:status", { agentId: "a1", status: "running", timestamp: new Date().toISOString() }, { v1Only: true });
    await waitFor(() => got.length === 1);
    const m = JSON.parse(got[0]!);
    assert.deepEqual(Object.keys(m), ["agentId", "status", "timestamp", "meshMeta", "meshSig"]);
    assert.equal(m.meshMeta.producer, "pilox-core");
    const { macV1, coreOf } = await import("../src/bus/index.ts");
    assert.equal(m.meshSig, macV1(spec.secret, "pilox:agent:status", coreOf(m), m.meshMeta));
    listener.disconnect();
  });

  it("refuses forged, unsigned, replayed, stale, wrong-channel, malformed and oversized messages, counted by reason", async () => {
    const { bus: sub, metrics } = bus({ keys: [k1], maxAgeMs: 60_000 });
    await sub.start();
    await untilReady(sub);
    const c = collector();
    await sub.subscribe("guarded", c.handler);
    const good = sealMessage("guarded", { n: 1 }, k1);
    const forged = { ...sealMessage("guarded", { n: 2 }, k1), n: 3 };
    const unsigned = { n: 4, meshMeta: { v: 1, producer: "x", eventId: "u-1" } };
    const stale = sealMessage("guarded", { n: 5 }, k1, { now: Date.now() - 120_000 });
    const otherChannel = sealMessage("elsewhere", { n: 6 }, k1);
    const wrongKey = sealMessage("guarded", { n: 7 }, k2);
    for (const m of [good, good, forged, unsigned, stale, otherChannel, wrongKey]) await raw.publish("guarded", JSON.stringify(m));
    await raw.publish("guarded", "{not json");
    await raw.publish("guarded", JSON.stringify({ ...good, pad: "x".repeat(300 * 1024) }));
    const last = sealMessage("guarded", { n: 8 }, k1);
    await raw.publish("guarded", JSON.stringify(last));
    await waitFor(() => c.got.length === 2);
    assert.deepEqual(c.got.map((d) => d.message["n"]), [1, 8]);
    const reasons: Record<string, number> = {};
    for (const r of ["replayed", "forged", "unsigned", "stale", "wrong_channel", "unknown_key", "malformed", "oversized"]) {
      reasons[r] = await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: r });
    }
    assert.deepEqual(reasons, { replayed: 1, forged: 1, unsigned: 1, stale: 1, wrong_channel: 1, unknown_key: 1, malformed: 1, oversized: 1 });
  });

  it("a v1 message without extension is refused when accept_v1_unextended is off, and replays of it are caught when on", async () => {
    const { bus: strict, metrics } = bus({ keys: [spec], acceptV1Unextended: false });
    const { bus: lenient, metrics: m2 } = bus({ keys: [spec] });
    await Promise.all([strict.start(), lenient.start()]);
    await Promise.all([untilReady(strict), untilReady(lenient)]);
    const a = collector();
    const b = collector();
    await strict.subscribe("pilox:system:events", a.handler);
    await lenient.subscribe("pilox:system:events", b.handler);
    const wire = JSON.stringify(stockWire());
    await raw.publish("pilox:system:events", wire);
    await raw.publish("pilox:system:events", wire);
    await waitFor(async () => (await counterValue(m2, "pilox_mesh_bus_rejected_total", { reason: "replayed" })) === 1);
    await waitFor(async () => (await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "unextended" })) === 2);
    assert.equal(b.got.length, 1);
    assert.equal(a.got.length, 0);
  });
});

/**
 * The spec vector as a stock Pilox producer would send it now: the same fields, the MAC
 * computed the reference's way (macV1), its timestamp fresh (a v1 message is judged by it).
 */
const HIVE_ID = "0b3c2d1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";

function stockWire(): Record<string, unknown> {
  const core = { ...vectors.bus.core, timestamp: new Date().toISOString() };
  return { ...core, meshMeta: vectors.bus.meshMeta, meshSig: macV1(spec.secret, "pilox:system:events", core, vectors.bus.meshMeta) };
}

describe("key rotation without downtime", () => {
  it("old key accepted until removed, new key used for signing", async () => {
    const { bus: pub } = bus({ keys: [k1] });
    const { bus: sub, metrics } = bus({ keys: [k1] });
    await startReady(pub, sub);
    const c = collector();
    await sub.subscribe("rot", c.handler);
    const policy = sub.policyFor("rot");
    const { KeyRing } = await import("../src/bus/index.ts");

    await pub.publish("rot", { step: 1 });
    // 1. receivers learn k2 first
    sub.reconfigure(new KeyRing([k1, k2], "k1"), policy, new Map());
    await pub.publish("rot", { step: 2 });
    // 2. publishers switch to k2
    pub.reconfigure(new KeyRing([k1, k2], "k2"), policy, new Map());
    await pub.publish("rot", { step: 3 });
    await waitFor(() => c.got.length === 3);
    assert.deepEqual(c.got.map((d) => d.kid), ["k1", "k1", "k2"]);
    // 3. k1 is removed: a message still signed with it is refused
    sub.reconfigure(new KeyRing([k2]), policy, new Map());
    await raw.publish("rot", JSON.stringify(sealMessage("rot", { step: 4 }, k1)));
    await pub.publish("rot", { step: 5 });
    await waitFor(() => c.got.length === 4);
    assert.deepEqual(c.got.map((d) => d.message["step"]), [1, 2, 3, 5]);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "unknown_key" }), 1);
  });
});

describe("faults", () => {
  it("resubscribes after Redis restarts; best-effort publishes fail loudly while it is down", async () => {
    const { bus: pub } = bus({ keys: [k1] });
    const { bus: sub } = bus({ keys: [k1] });
    await startReady(pub, sub);
    const c = collector();
    await sub.subscribe("flaky", c.handler);
    await pub.publish("flaky", { n: 1 });
    await waitFor(() => c.got.length === 1);
    await redis.kill();
    await waitFor(() => !pub.backend.isReady(), 5_000, "publisher to notice");
    await assert.rejects(pub.publish("flaky", { n: 2 }), (e: Error & { code?: string }) => e.code === "backend_unavailable");
    await redis.restart();
    await untilReady(pub);
    // The subscriber's connection resubscribes on its own; publish until one arrives.
    await waitFor(async () => {
      await pub.publish("flaky", { n: 3 });
      return c.got.length >= 2;
    }, 15_000, "delivery after restart");
    assert.equal(c.got[1]!.message["n"], 3);
  });

  it("durable publishes while Redis is down are spooled on disk and flushed in order", async () => {
    const spoolDir = s.path("spool1");
    const channels = { orders: { durable: true } };
    const { bus: pub, metrics } = bus({ keys: [k1], channels, spoolDir });
    const { bus: sub } = bus({ keys: [k1], channels, group: "spool-g" });
    await startReady(pub, sub);
    const c = collector();
    await sub.subscribe("orders", c.handler);
    await pub.publish("orders", { n: 0 });
    await waitFor(() => c.got.length === 1);
    await redis.kill();
    await waitFor(() => !pub.backend.isReady(), 5_000);
    for (let n = 1; n <= 50; n++) {
      const r = await pub.publish("orders", { n });
      assert.equal(r.spooled, true);
    }
    assert.equal(pub.spoolStats().messages, 50);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_spool_messages"), 50);
    await redis.restart();
    await waitFor(() => c.got.length === 51, 20_000, "spooled messages");
    assert.deepEqual(c.got.map((d) => d.message["n"]), Array.from({ length: 51 }, (_, i) => i));
    assert.equal(pub.spoolStats().messages, 0);
  });

  it("a full spool refuses the publish with spool_full rather than dropping it", async () => {
    const { bus: pub, metrics } = bus({ keys: [k1], channels: { tiny: { durable: true } }, spoolDir: s.path("spool2"), spoolMaxBytes: 4096 });
    await pub.start();
    await untilReady(pub);
    await redis.kill();
    await waitFor(() => !pub.backend.isReady(), 5_000);
    let refused = 0;
    let accepted = 0;
    for (let i = 0; i < 40; i++) {
      try {
        await pub.publish("tiny", { i, pad: "y".repeat(200) });
        accepted++;
      } catch (e) {
        assert.equal((e as { code: string }).code, "spool_full");
        refused++;
      }
    }
    assert.ok(accepted > 0 && refused > 0);
    assert.equal(pub.spoolStats().messages, accepted);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_spool_refused_total"), refused);
    await redis.restart();
    await untilReady(pub);
    await waitFor(() => pub.spoolStats().messages === 0, 10_000, "spool flush");
    assert.equal(await raw.xlen("pilox-mesh:stream:tiny"), accepted);
  });

  it("a spool survives a restart of the publisher", async () => {
    const spoolDir = s.path("spool3");
    const channels = { ledger: { durable: true } };
    const first = bus({ keys: [k1], channels, spoolDir }).bus;
    await first.start();
    await untilReady(first);
    await redis.kill();
    await waitFor(() => !first.backend.isReady(), 5_000);
    for (let n = 0; n < 10; n++) await first.publish("ledger", { n });
    await first.close();
    await redis.restart();
    const before = await raw.xlen("pilox-mesh:stream:ledger").catch(() => 0);
    const second = bus({ keys: [k1], channels, spoolDir }).bus;
    await second.start();
    await waitFor(async () => (await raw.xlen("pilox-mesh:stream:ledger")) === before + 10, 10_000, "flush after restart");
    const entries = await raw.xrange("pilox-mesh:stream:ledger", "-", "+");
    assert.deepEqual(entries.slice(-10).map(([, f]) => JSON.parse(f[1]!).n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a handler that keeps failing sends the entry to the dead-letter stream, then the channel moves on", async () => {
    const channels = { fragile: { durable: true } };
    const { bus: pub } = bus({ keys: [k1], channels });
    const { bus: sub } = bus({ keys: [k1], channels, maxAttempts: 3, group: "dl" });
    await startReady(pub, sub);
    const seen: number[] = [];
    await sub.subscribe("fragile", (d) => {
      seen.push(d.message["n"] as number);
      if (d.message["n"] === 1) throw new Error("boom");
    });
    await pub.publish("fragile", { n: 1 });
    await pub.publish("fragile", { n: 2 });
    await waitFor(() => seen.includes(2), 15_000, "the next message");
    assert.deepEqual(seen, [1, 1, 1, 2]);
    const dead = await raw.xrange("pilox-mesh:stream:fragile:dead", "-", "+");
    assert.equal(dead.length, 1);
    assert.equal(JSON.parse(dead[0]![1][1]!).n, 1);
  });

  it("readiness warns when a durable channel sits on a Redis without AOF", async () => {
    const plain = await startRedis({ aof: false });
    try {
      const { bus: b } = makeBus({ url: plain.url, keys: [k1], channels: { d: { durable: true } } });
      await b.start();
      await untilReady(b);
      const r = await b.ready();
      assert.equal(r.ok, true);
      assert.match(r.warnings.join(), /without AOF/);
      await plain.kill();
      await waitFor(() => !b.backend.isReady(), 5_000);
      assert.equal((await b.ready()).ok, false);
      await b.close();
    } finally {
      await plain.stop();
    }
  });
});
