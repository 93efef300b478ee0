/**
 * A full queue is backpressure, never loss: a durable subscriber whose handler has no room
 * (SpoolFullError, what a peer's full outbound queue throws) stops reading, spends no delivery
 * attempt and dead-letters nothing, then takes every message in order once there is room.
 * On the embedded backend and on Redis.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Redis } from "ioredis";
import { SpoolFullError } from "../src/bus/spool.ts";
import { makeBus, untilReady, waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { SECRET_A } from "./helpers/tmp.ts";

const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const channels = { "jobs:durable": { durable: true } };

for (const kind of ["embedded", "redis"] as const) {
  describe(`backpressure on the ${kind} backend`, { timeout: 60_000 }, () => {
    let redis: TestRedis | undefined;
    after(async () => redis?.stop());

    it("a handler without room pauses the consumer: no attempt spent, nothing dead-lettered, all delivered in order", async () => {
      if (kind === "redis") redis = await startRedis();
      // max_attempts = 2: before the fix two refusals of one entry dead-lettered it.
      const { bus } = makeBus({ ...(redis ? { url: redis.url } : {}), keys: [k1], channels, maxAttempts: 2, group: "bp", blockMs: 200 });
      await bus.start();
      await untilReady(bus);
      let full = true;
      let refusals = 0;
      const got: number[] = [];
      await bus.subscribe("jobs:durable", (d) => {
        if (full) {
          refusals++;
          throw new SpoolFullError("spool is full (4096 bytes)");
        }
        got.push(d.message["n"] as number);
      });
      for (let n = 0; n < 200; n++) await bus.publish("jobs:durable", { n });
      // Long enough for many more refusals than max_attempts.
      await waitFor(() => refusals >= 6, 20_000, "the handler refused several times");
      full = false;
      await waitFor(() => got.length >= 200, 20_000, "all 200 delivered once there is room");
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i), "each once, in order");
      if (redis) {
        const r = new Redis(redis.url);
        assert.equal(await r.xlen("pilox-mesh:stream:jobs:durable:dead"), 0, "nothing dead-lettered");
        r.disconnect();
      }
      await bus.close();
    });
  });
}
