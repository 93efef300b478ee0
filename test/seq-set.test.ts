/**
 * The sequence set kept two ways must agree: in TypeScript (src/bus/seq-set.ts, the embedded bus
 * and the WAN's checks) and in the Redis backend's script (appendOnce). Random sequences, gaps,
 * repeats, microsecond-sized numbers and jumps past the window, against a real Redis.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { Redis } from "ioredis";
import { RedisBackend } from "../src/bus/backends/redis/index.ts";
import { EmbeddedBackend } from "../src/bus/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { SEQ_WINDOW, SeqMemory } from "../src/bus/seq-set.ts";
import { waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";

let redis: TestRedis;
let backend: RedisBackend;
let raw: Redis;
before(async () => {
  redis = await startRedis({ aof: false });
  backend = new RedisBackend({ url: redis.url, streamPrefix: "t:", streamMaxLen: 100_000, blockMs: 500, connectTimeoutMs: 2_000, log: silentLogger });
  await backend.start();
  await waitFor(() => backend.isReady(), 10_000, "redis");
  raw = new Redis(redis.url);
});
after(async () => {
  raw.disconnect();
  await backend.close();
  await redis.stop();
});

it("appendOnce on Redis decides and stores exactly as SeqMemory does, appending only the new", async () => {
  let rnd = 7;
  const next = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31);
  const base = Date.now() * 1000;
  let ts = new SeqMemory();
  const embedded = new EmbeddedBackend();
  let appended = 0;
  for (let i = 0; i < 3_000; i++) {
    const r = next() % 100;
    // Mostly in order, some repeats, some gaps, a few far ahead (past the window) or behind.
    const seq = r < 60 ? base + i : r < 80 ? base + Math.max(0, i - (next() % 50)) : r < 95 ? base + i + (next() % 20) : r < 98 ? base + i + SEQ_WINDOW + (next() % 1000) : base + i - SEQ_WINDOW - 5;
    const expected = !ts.seen(seq);
    const got = await backend.appendOnce([{ channel: "c", raw: `m${i}` }], { hash: "marks", field: "s", seq });
    const gotEmbedded = await embedded.appendOnce([{ channel: "c", raw: `m${i}` }], { hash: "marks", field: "s", seq });
    assert.equal(got, expected, `step ${i}, seq ${seq - base}`);
    assert.equal(gotEmbedded, expected, `embedded, step ${i}`);
    if (expected) {
      ts = ts.with(seq);
      appended++;
    }
    assert.deepEqual(JSON.parse((await raw.hget("marks", "s"))!), ts.toJSON(), `stored set after step ${i}`);
  }
  assert.equal(await raw.xlen("t:c"), appended);
});

it("a stored set that is not JSON reads as empty; one in the wrong Redis type is an error, not a delivery", async () => {
  await raw.hset("marks2", "s", "{garbage");
  assert.equal(await backend.appendOnce([], { hash: "marks2", field: "s", seq: 5 }), true);
  assert.equal(await raw.hget("marks2", "s"), '{"r":[[5,5]]}');
  await raw.set("marks3", "x");
  await assert.rejects(backend.appendOnce([{ channel: "c2", raw: "m" }], { hash: "marks3", field: "s", seq: 1 }));
  assert.equal(await raw.exists("t:c2"), 0);
});
