/**
 * The durability promise: 10,000 messages on a durable channel, Redis killed (SIGKILL) and
 * restarted several times while they are published, the subscriber restarted once, and every
 * message reaches the handler exactly once.
 */
import assert from "node:assert/strict";
import { after, it } from "node:test";
import type { Closer, MeshBus } from "../src/bus/index.ts";
import { makeBus, untilReady, waitFor } from "./helpers/bus.ts";
import { startRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const TOTAL = 10_000;
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const channels = { "jobs:durable": { durable: true } };
const s = scratch();
after(() => s.cleanup());

it(`${TOTAL} durable messages across Redis kills and a subscriber restart: each delivered exactly once`, { timeout: 300_000 }, async () => {
  const redis = await startRedis({ aof: true });
  const counts = new Uint16Array(TOTAL);
  let delivered = 0;
  const handler = (d: { message: Record<string, unknown> }) => {
    counts[d.message["n"] as number]!++;
    delivered++;
  };
  const subscriber = async (): Promise<{ bus: MeshBus; sub: Closer }> => {
    const { bus } = makeBus({ url: redis.url, keys: [k1], channels, group: "durable-g", consumer: "node-1", replayFile: s.path("replay.json"), claimIdleMs: 3_000 });
    await bus.start();
    await untilReady(bus);
    return { bus, sub: await bus.subscribe("jobs:durable", handler) };
  };
  const { bus: pub } = makeBus({ url: redis.url, keys: [k1], channels, spoolDir: s.path("spool") });
  await pub.start();
  await untilReady(pub);
  let sub = await subscriber();

  let spooled = 0;
  let gaveUp = false; // set when the fault script fails, so the publisher stops too
  const kills: number[] = [];
  const publishAll = async () => {
    const CONC = 20;
    for (let base = 0; base < TOTAL; base += CONC) {
      const batch = [];
      for (let n = base; n < Math.min(base + CONC, TOTAL); n++) batch.push(pub.publish("jobs:durable", { n }).then((r) => void (r.spooled && spooled++)));
      await Promise.all(batch);
      // Stay at most a few hundred ahead of the subscriber, so the faults below land while
      // messages are in flight (rather than after everything sits in the spool).
      while (published - delivered > 400 && !gaveUp) await new Promise((r) => setTimeout(r, 5));
      if (gaveUp) return;
    }
  };
  const chaos = async () => {
    for (const at of [1_500, 4_000, 7_000]) {
      await waitFor(() => delivered >= at, 60_000, `delivery ${at}`);
      if (process.env["PILOX_TEST_LOG"]) console.error(`kill at published=${published} delivered=${delivered}`);
      kills.push(published);
      await redis.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 400));
      await redis.restart();
      if (at === 4_000) {
        // The subscriber restarts once, while publishing goes on.
        const dbg = (m: string) => process.env["PILOX_TEST_LOG"] && console.error(m);
        await untilReady(pub);
        dbg("closing subscription");
        await sub.sub.close();
        dbg("closing subscriber bus");
        await sub.bus.close();
        dbg("starting subscriber");
        sub = await subscriber();
        dbg("subscriber restarted");
      }
    }
  };
  let published = 0;
  const origPublish = pub.publish.bind(pub);
  pub.publish = async (...a) => {
    const r = await origPublish(...a);
    published++;
    return r;
  };

  const progress = setInterval(() => process.env["PILOX_TEST_LOG"] && console.error(`published=${published} delivered=${delivered} spool=${pub.spoolStats().messages}`), 2_000);
  await Promise.all([publishAll(), chaos().catch((e) => ((gaveUp = true), Promise.reject(e)))]);
  assert.equal(published, TOTAL);
  await waitFor(() => delivered >= TOTAL, 120_000, `all ${TOTAL} deliveries (got ${delivered})`);
  clearInterval(progress);
  // Give late redeliveries a chance to show up as duplicates.
  await new Promise((r) => setTimeout(r, 4_000));
  const missing: number[] = [];
  const twice: number[] = [];
  counts.forEach((c, n) => (c === 0 ? missing.push(n) : c > 1 && twice.push(n)));
  assert.deepEqual({ missing: missing.slice(0, 20), twice: twice.slice(0, 20) }, { missing: [], twice: [] });
  assert.equal(delivered, TOTAL);
  assert.equal(kills.length, 3);
  assert.ok(spooled > 0, "some publishes went through the spool while Redis was down");
  await sub.sub.close();
  await sub.bus.close();
  await pub.close();
  await redis.stop();
});

it("a spooled message keeps its origin and trace context when it is sealed on the way out", { timeout: 60_000 }, async () => {
  const redis = await startRedis({ aof: false });
  const { bus } = makeBus({ url: redis.url, keys: [k1], channels, group: "spool-g", consumer: "n1", spoolDir: s.path("spool-origin") });
  await bus.start();
  await untilReady(bus);
  const got: { origin?: string; traceparent?: string }[] = [];
  const sub = await bus.subscribe("jobs:durable", (d) => void got.push({ ...(d.ext?.origin ? { origin: d.ext.origin } : {}), ...(d.ext?.traceparent ? { traceparent: d.ext.traceparent } : {}) }));
  try {
    await redis.kill("SIGKILL");
    await waitFor(() => !bus.backend.isReady(), 10_000, "Redis seen away");
    const trace = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };
    const r = await bus.publish("jobs:durable", { n: 1 }, { origin: "https://peer.example", trace });
    assert.equal(r.spooled, true);
    await redis.restart();
    await waitFor(() => got.length === 1, 20_000, "the spooled message delivered");
    // A relayed message that lost its origin would look local and be forwarded again.
    assert.deepEqual(got[0], { origin: "https://peer.example", traceparent: trace.traceparent });
  } finally {
    await sub.close();
    await bus.close();
    await redis.stop();
  }
});
