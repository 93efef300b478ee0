/**
 * Many durable channels, one blocked read: a bus consuming 200 durable channels holds a handful
 * of Redis connections (not one per channel) and sends Redis nothing while no one publishes.
 * A channel that goes idle while the shared read is blocked, or one subscribed later, still gets
 * its next message at once (the read is interrupted, not waited out: block_ms here is 30 s).
 * Tails (resumable SSE readers of durable channels) share one blocked read the same way. An ACL
 * that refuses CLIENT UNBLOCK costs latency, not messages.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import type { ChannelOptions, Closer, MeshBus } from "../src/bus/index.ts";
import { createLogger, type Logger } from "../src/log/index.ts";
import { makeBus, untilReady, waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { SECRET_A } from "./helpers/tmp.ts";

const N = 200;
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const names = Array.from({ length: N + 1 }, (_, i) => `many:${i}`);
const tailNames = Array.from({ length: 5 }, (_, i) => `tails:${i}`);
const channels: Record<string, ChannelOptions> = Object.fromEntries([...names, ...tailNames].map((n) => [n, { durable: true }]));

/** Clients connected to Redis, less the one asking. */
async function clients(raw: Redis): Promise<number> {
  return String(await raw.client("LIST")).trim().split("\n").length - 1;
}

async function commandsProcessed(raw: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(String(await raw.info("stats")))![1]);
}

describe("durable channels share one blocked read", { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let raw: Redis;
  const buses: MeshBus[] = [];
  const bus = async (o: { consumer?: string; blockMs?: number; log?: Logger } = {}): Promise<MeshBus> => {
    const { bus } = makeBus({ url: redis.url, keys: [k1], channels, group: "many-g", consumer: o.consumer ?? "c1", blockMs: o.blockMs ?? 30_000, claimIdleMs: 60_000, ...(o.log ? { log: o.log } : {}) });
    buses.push(bus);
    await bus.start();
    await untilReady(bus);
    return bus;
  };

  before(async () => {
    redis = await startRedis({ aof: false });
    raw = new Redis(redis.url);
  });
  after(async () => {
    for (const b of buses) await b.close().catch(() => {});
    raw.disconnect();
    await redis.stop();
  });

  it(`${N} channels: a few connections, each message once, nothing sent to Redis while idle, a late subscriber served at once`, async () => {
    const before = await clients(raw);
    const sub = await bus();
    const seen = new Map<string, number>();
    const subs: Closer[] = [];
    for (const name of names.slice(0, N)) subs.push(await sub.subscribe(name, (d) => void seen.set(`${name}/${d.message["n"]}`, (seen.get(`${name}/${d.message["n"]}`) ?? 0) + 1)));
    const pub = await bus({ consumer: "publisher" });
    await waitFor(async () => (await clients(raw)) - before >= 4, 5_000, "the subscriber's connections");
    const held = (await clients(raw)) - before;

    // Rounds: every channel gets a message while the others wait, so streams go idle and take
    // their seats again while the shared read is blocked without them.
    for (let round = 0; round < 3; round++) {
      for (const name of names.slice(0, N)) await pub.publish(name, { n: round });
      await waitFor(() => seen.size === N * (round + 1), 20_000, `round ${round} (have ${seen.size} of ${N * (round + 1)})`);
    }
    assert.deepEqual([...seen.values()].filter((x) => x !== 1), [], "each delivered once");
    // Publisher: command + pub/sub connections; subscriber: those, the consumers' reads, one waiter.
    assert.ok(held <= 6, `${held} connections for ${N} durable consumers and a publisher`);

    // Idle: the waiter's read is blocked (30 s), no claims are due (every 30 s): Redis hears nothing.
    await new Promise((r) => setTimeout(r, 500));
    const c0 = await commandsProcessed(raw);
    await new Promise((r) => setTimeout(r, 3_000));
    const idle = (await commandsProcessed(raw)) - c0 - 1; // less our own INFO
    assert.ok(idle <= 2, `${idle} commands in 3 s with no traffic`);

    // A channel subscribed now joins the blocked read at once.
    const late = names[N]!;
    let lateGot = 0;
    subs.push(await sub.subscribe(late, () => void lateGot++));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await pub.publish(late, { n: 0 });
    await waitFor(() => lateGot === 1, 10_000, "the late channel's message");
    assert.ok(Date.now() - t0 < 10_000);

    // Unsubscribed channels leave; the rest go on; with none left the waiter's connection goes.
    for (const s of subs.slice(0, N - 1)) await s.close();
    await pub.publish(names[N - 1]!, { n: 9 });
    await waitFor(() => seen.has(`${names[N - 1]}/9`), 10_000, "the remaining channel's message");
    for (const s of subs.slice(N - 1)) await s.close();
    await waitFor(async () => (await clients(raw)) - before <= held - 1, 5_000, "the waiter's connection closed");
  });

  it("100 tails share one blocked read: each gets every entry once and in order; one from the start catches up, then waits with the others", async () => {
    const before = await clients(raw);
    const reader = await bus({ consumer: "tails" });
    const pub = await bus({ consumer: "tails-publisher" });
    const busConns = (await clients(raw)) - before;
    const got: number[][] = [];
    const tails: Closer[] = [];
    for (let t = 0; t < 100; t++) {
      const seen: number[] = [];
      got.push(seen);
      tails.push(await reader.tail(tailNames[t % 5]!, "$", async (d) => void seen.push(d.message["n"] as number)));
    }
    await new Promise((r) => setTimeout(r, 300));
    // The tails' shared connection and their waiter's, whatever their number.
    assert.ok((await clients(raw)) - before - busConns <= 2, `${(await clients(raw)) - before - busConns} connections for 100 tails`);
    for (let n = 0; n < 30; n++) await pub.publish(tailNames[n % 5]!, { n });
    const want = (t: number) => Array.from({ length: 30 }, (_, n) => n).filter((n) => n % 5 === t % 5);
    await waitFor(() => got.every((g, t) => g.length === want(t).length), 20_000, `every tail's entries (${got.map((g) => g.length).join(",")})`);
    got.forEach((g, t) => assert.deepEqual(g, want(t), `tail ${t}`));

    // From the start of a stream: the six entries it holds, then the next one, with the others.
    const late: number[] = [];
    tails.push(await reader.tail(tailNames[0]!, "0", async (d) => void late.push(d.message["n"] as number)));
    await waitFor(() => late.length === 6, 10_000, "the late tail's catch-up");
    await pub.publish(tailNames[0]!, { n: 100 });
    await waitFor(() => late.length === 7 && got[0]!.length === 7, 10_000, "the next entry, for the late tail and the others");
    assert.deepEqual(late, [...want(0), 100]);
    for (const t of tails) await t.close();
    await waitFor(async () => (await clients(raw)) - before - busConns <= 1, 5_000, "the tails' waiter connection closed");
  });

  it("refused CLIENT UNBLOCK (ACL): a warning naming the grant, a short block after it, each message once", async () => {
    await raw.call("ACL", "SETUSER", "default", "-client|unblock");
    try {
      const logs: string[] = [];
      const log = createLogger({ level: "warn", format: "text", write: (l) => void logs.push(l) });
      const sub = await bus({ consumer: "acl", blockMs: 3_000, log });
      const pub = await bus({ consumer: "acl-publisher" });
      const got = new Map<string, number>();
      const note = (name: string) => (d: { message: Record<string, unknown> }) => void got.set(`${name}/${d.message["n"]}`, (got.get(`${name}/${d.message["n"]}`) ?? 0) + 1);
      for (const name of names.slice(0, 20)) await sub.subscribe(name, note(name), { group: "acl-g" });
      await new Promise((r) => setTimeout(r, 300));
      // Joins a blocked read it is not in: the interrupt is refused, the read runs its 3 s out.
      await sub.subscribe(names[20]!, note(names[20]!), { group: "acl-g" });
      await pub.publish(names[20]!, { n: 0 });
      await waitFor(() => got.size === 1, 10_000, "the first message");
      assert.ok(logs.some((l) => /refuses CLIENT ID or CLIENT UNBLOCK/.test(l) && /\+client\|unblock/.test(l)), logs.join("\n"));
      for (let round = 1; round <= 2; round++) {
        for (const name of names.slice(0, 21)) await pub.publish(name, { n: round });
        await waitFor(() => got.size === 1 + 21 * round, 30_000, `round ${round}`);
      }
      assert.deepEqual([...got.values()].filter((x) => x !== 1), []);
    } finally {
      await raw.call("ACL", "SETUSER", "default", "+client|unblock");
    }
  });
});
