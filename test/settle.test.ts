/**
 * Durable handlers that defer their writes to the end of a batch (subscribe's `settle`, as the
 * federation and WAN queues do): a batch whose settle fails is delivered again, not refused as
 * a replay, and nothing is acknowledged before its settle succeeded. On both backends, with the
 * replay journal on.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { MeshBus } from "../src/bus/index.ts";
import { makeBus, untilReady, waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const channels = { jobs: { durable: true } };
const s = scratch();
const N = 600;
let redis: TestRedis | undefined;
after(async () => {
  await redis?.stop();
  s.cleanup();
});

async function run(url: string | undefined, tag: string): Promise<void> {
  const { bus } = makeBus({ ...(url ? { url } : {}), keys: [k1], channels, replayFile: s.path(`${tag}-replay.json`) });
  await bus.start();
  await untilReady(bus);
  // What the handler took since the last settle, and what settles made final.
  let taken: number[] = [];
  const committed = new Map<number, number>();
  let settles = 0;
  let failures = 0;
  const sub = await bus.subscribe(
    "jobs",
    (d) => {
      taken.push(d.message["n"] as number);
    },
    {
      settle: () => {
        const batch = taken;
        taken = [];
        // The first two batches that hold something fail, as a full disk would.
        if (batch.length > 0 && ++settles <= 2) {
          failures++;
          throw new Error("disk full");
        }
        for (const n of batch) committed.set(n, (committed.get(n) ?? 0) + 1);
      },
    },
  );
  await Promise.all(Array.from({ length: N }, (_, n) => publishOn(bus, n)));
  await waitFor(() => committed.size === N, 30_000, `${tag}: all ${N} committed`);
  await sub.close();
  await bus.close();
  assert.equal(failures, 2);
  for (const [n, c] of committed) assert.equal(c, 1, `${tag}: message ${n} committed ${c} times`);
}

function publishOn(bus: MeshBus, n: number) {
  return bus.publish("jobs", { n });
}

describe("durable handlers that settle per batch", () => {
  it("embedded: a failed settle delivers the batch again, and every message is committed once", async () => {
    await run(undefined, "embedded");
  });

  it("redis: a failed settle leaves the batch pending, delivered again, and every message is committed once", async () => {
    redis = await startRedis({ aof: false });
    await run(redis.url, "redis");
  });
});
