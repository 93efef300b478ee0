/**
 * One durable channel read by several consumer groups of one bus (a channel forwarded to three
 * peers, each forwarder its own group, and read by local agents): every group gets every
 * message. Before, the bus's replay memory was shared by its groups, so the first group to read
 * a message made it a "replay" for the others: a channel forwarded to three WAN peers reached
 * each of them with a third of its messages (found by the scale simulation, bench/wan.scale.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MeshBus } from "../src/bus/index.ts";
import { makeBus, startReady, waitFor } from "./helpers/bus.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
let redis: TestRedis;
const buses: MeshBus[] = [];

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(buses.map((b) => b.close()));
  await redis.stop();
  s.cleanup();
});

for (const kind of ["embedded", "redis"] as const) {
  describe(`durable consumer groups on the ${kind} bus`, () => {
    it("each of four groups on one bus gets every message, once", async () => {
      const channel = `orders-${kind}`;
      const { bus } = makeBus({ ...(kind === "redis" ? { url: redis.url } : {}), keys: [k1], channels: { [channel]: { durable: true } }, replayFile: s.path(`replay-${kind}.journal`) });
      buses.push(bus);
      await startReady(bus);
      const seen = new Map<string, Map<string, number>>();
      const groups = ["federation-peer1", "federation-peer2", "federation-peer3", "agents"];
      for (const g of groups) {
        const m = new Map<string, number>();
        seen.set(g, m);
        await bus.subscribe(channel, (d) => void m.set(d.eventId, (m.get(d.eventId) ?? 0) + 1), { group: g });
      }
      const N = 300;
      for (let i = 0; i < N; i++) await bus.publish(channel, { type: "order", payload: { i } });
      await waitFor(() => groups.every((g) => seen.get(g)!.size >= N), 20_000, "every group has every message");
      await new Promise((r) => setTimeout(r, 300));
      for (const g of groups) {
        const m = seen.get(g)!;
        assert.equal(m.size, N, g);
        assert.ok([...m.values()].every((c) => c === 1), `${g}: each once`);
      }
    });
  });
}
