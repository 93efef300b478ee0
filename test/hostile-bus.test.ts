/**
 * Issue 12 against the bus on a real Redis, as an outsider who can reach Redis but holds no
 * key: a deeply nested PUBLISH, poison stream entries, unextended v1 replays, oversized
 * publishes. Each must be refused and counted, never crash the process or hold up the rest.
 */
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { after, before, describe, it } from "node:test";
import { EmbeddedBackend, macV1, MessageTooLargeError, type MeshBus } from "../src/bus/index.ts";
import { closeRedisSuite, collector, counterValue, makeBus, redisWithClient, startReady, waitFor } from "./helpers/bus.ts";
import type { TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
/** 24 KB of JSON nested 10,000 deep: what overflowed the stack in the MAC check. */
const DEEP = `{"meshMeta":{"v":1,"producer":"x","eventId":"deep-1"},"meshSig":"${"0".repeat(64)}","a":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
let redis: TestRedis;
let raw: Redis;
const buses: MeshBus[] = [];
const bus = (o: Partial<Parameters<typeof makeBus>[0]> = {}) => {
  const b = makeBus({ url: redis.url, keys: [k1], ...o });
  buses.push(b.bus);
  return b;
};

before(async () => ({ redis, raw } = await redisWithClient()));
after(async () => {
  await closeRedisSuite(buses, raw, redis);
  s.cleanup();
});

describe("crash by PUBLISH", () => {
  it("a 10,000-deep message on a subscribed channel is refused as too_deep; the process and the subscription live on", async () => {
    const { bus: sub, metrics } = bus();
    const { bus: pub } = bus();
    await startReady(sub, pub);
    const c = collector();
    await sub.subscribe("jobs", c.handler);
    await raw.publish("jobs", DEEP);
    // Deep in an operator field too, and deep inside a valid-looking meshMeta.
    await raw.publish("jobs", `{"meshMeta":${"{\"a\":".repeat(5_000)}1${"}".repeat(5_000)},"meshSig":"${"0".repeat(64)}"}`);
    await pub.publish("jobs", { after: true });
    await waitFor(() => c.got.length === 1);
    assert.equal(c.got[0]!.message["after"], true);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "too_deep" }), 2);
  });

  it("sealing a deep message is refused with a clear error, not a stack overflow", async () => {
    const { bus: pub } = bus();
    await startReady(pub);
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    await assert.rejects(pub.publish("jobs", { deep }), /nested deeper than 64 levels/);
  });
});

describe("poison in a durable stream", () => {
  it("a deep entry and an entry without its field are dead-lettered with their reasons; the 20 behind them are delivered", async () => {
    const { bus: b, metrics } = bus({ channels: { orders: { durable: true } }, group: "poison-g" });
    await startReady(b);
    const c = collector();
    await b.subscribe("orders", c.handler);
    await raw.xadd("pilox-mesh:stream:orders", "*", "m", DEEP);
    await raw.xadd("pilox-mesh:stream:orders", "*", "other", "field");
    await raw.xadd("pilox-mesh:stream:orders", "*", "m", '{"not":"signed"}');
    for (let i = 0; i < 20; i++) await b.publish("orders", { i });
    await waitFor(() => c.got.length === 20, 10_000, "20 delivered");
    assert.deepEqual(c.got.map((d) => d.message["i"]), [...Array(20).keys()]);
    const dead = (await raw.xrange("pilox-mesh:stream:orders:dead", "-", "+")).map(([, f]) => Object.fromEntries(chunk(f)));
    assert.deepEqual(dead.map((d) => d["reason"]), ["too_deep", "malformed", "unsigned"]);
    assert.equal(dead[0]!["m"], DEEP); // the original body, for an operator to inspect
    assert.equal(dead[1]!["fields"], JSON.stringify(["other", "field"]));
    // Nothing pending: the poison was acknowledged after it was parked.
    const pending = (await raw.xpending("pilox-mesh:stream:orders", "poison-g")) as [number, ...unknown[]];
    assert.equal(pending[0], 0);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "too_deep" }), 1);
  });

  it("a resumable reader delivers what stands on both sides of a poison entry", async () => {
    const { bus: b } = bus({ channels: { ledger: { durable: true } } });
    await startReady(b);
    await b.publish("ledger", { n: 1 });
    await raw.xadd("pilox-mesh:stream:ledger", "*", "m", DEEP);
    await raw.xadd("pilox-mesh:stream:ledger", "*", "x", "y");
    await b.publish("ledger", { n: 2 });
    const got: unknown[] = [];
    const t = await b.tail("ledger", "0", async (d) => void got.push(d.message["n"]));
    await waitFor(() => got.length === 2);
    await t.close();
    assert.deepEqual(got, [1, 2]);
  });
});

describe("the tails of a durable channel (resumable readers)", () => {
  it("share one replay memory: a copy appended later is refused, even by a tail that starts after the original", async () => {
    const { bus: b } = bus({ channels: { ledger2: { durable: true } } });
    await startReady(b);
    const first: unknown[] = [];
    const t1 = await b.tail("ledger2", "$", async (d) => void first.push(d.message["n"]));
    await b.publish("ledger2", { n: 1 });
    await waitFor(() => first.length === 1);
    const [originalId, fields] = ((await raw.xrange("pilox-mesh:stream:ledger2", "-", "+")) as [string, string[]][])[0]!;
    await raw.xadd("pilox-mesh:stream:ledger2", "*", "m", fields![1]!); // the same sealed message again
    await b.publish("ledger2", { n: 2 });
    await waitFor(() => first.length === 2);
    // Starts after the original: its first entry is the copy, which the channel's memory refuses.
    const late: unknown[] = [];
    const t2 = await b.tail("ledger2", originalId!, async (d) => void late.push(d.message["n"]));
    // From the start: the original, not the copy.
    const all: unknown[] = [];
    const t3 = await b.tail("ledger2", "0", async (d) => void all.push(d.message["n"]));
    await waitFor(() => late.length === 1 && all.length === 2);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(first, [1, 2]);
    assert.deepEqual(late, [2]);
    assert.deepEqual(all, [1, 2]);
    for (const t of [t1, t2, t3]) await t.close();
  });
});

describe("unextended v1 messages", () => {
  const v1 = (eventId: string, timestamp?: string) => {
    const core: Record<string, unknown> = { task: 1 };
    if (timestamp !== undefined) core["timestamp"] = timestamp;
    const meta = { v: 1, producer: "stock", eventId };
    return JSON.stringify({ ...core, meshMeta: meta, meshSig: macV1(k1.secret, "jobs", core, meta) });
  };

  it("are judged by their timestamp: fresh accepted once, old or absent refused as stale, future as clock_skew", async () => {
    const { bus: sub, metrics } = bus();
    await startReady(sub);
    const c = collector();
    await sub.subscribe("jobs", c.handler);
    await raw.publish("jobs", v1("fresh", new Date().toISOString()));
    await raw.publish("jobs", v1("fresh", new Date().toISOString())); // a replay
    await raw.publish("jobs", v1("old", new Date(Date.now() - 3_600_000).toISOString()));
    await raw.publish("jobs", v1("none"));
    await raw.publish("jobs", v1("future", new Date(Date.now() + 3_600_000).toISOString()));
    await waitFor(async () => (await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "clock_skew" })) === 1);
    assert.deepEqual(c.got.map((d) => d.eventId), ["fresh"]);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "stale" }), 2);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "replayed" }), 1);
  });
});

describe("publish checks the sealed size", () => {
  it("a message every receiver would refuse as oversized is refused at publish, naming the limit", async () => {
    const { bus: pub } = bus();
    await startReady(pub);
    const err = await pub.publish("jobs", { blob: "x".repeat(300 * 1024) }).catch((e: unknown) => e);
    assert.ok(err instanceof MessageTooLargeError);
    assert.match(err.message, /bus\.max_message_bytes is 262144/);
  });
});

describe("embedded backend", () => {
  it("forgets a channel once its last subscriber leaves (agents choose channel names)", async () => {
    const e = new EmbeddedBackend();
    const closers = await Promise.all(Array.from({ length: 1_000 }, (_, i) => e.subscribe([`ch-${i}`], () => {})));
    assert.equal(e.channelCount(), 1_000);
    await Promise.all(closers.map((c) => c.close()));
    assert.equal(e.channelCount(), 0);
  });

  it("a tail resumes after the entry id it is given", async () => {
    const e = new EmbeddedBackend();
    const ids = await e.append("log", ["a", "b", "c"]);
    const from = async (afterId: string) => {
      const got: string[] = [];
      const t = await e.tail("log", afterId, async (batch) => void got.push(...batch.map((x) => x.raw)));
      await new Promise((r) => setTimeout(r, 50));
      await t.close();
      return got;
    };
    assert.deepEqual(await from(ids[0]!), ["b", "c"]);
    assert.deepEqual(await from(ids[2]!), []);
    assert.deepEqual(await from("0"), ["a", "b", "c"]);
    assert.deepEqual(await from("$"), []);
  });
});

function chunk(f: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < f.length; i += 2) out.push([f[i]!, f[i + 1]!]);
  return out;
}
