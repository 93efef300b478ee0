/**
 * bus.pubsub: sealed + verified messages/s end to end through ioredis, against raw ioredis
 * PUBLISH → SUBSCRIBE of the same JSON payload, same Redis, same run. Then publish→deliver
 * latency at a moderate fixed rate, p50 and p99, for both.
 */
import { Redis } from "ioredis";
import { startRedis } from "../test/helpers/redis.ts";
import { benchBus, payload, percentile, report, startReady, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 50_000);
const WINDOW = Number(process.env["BENCH_WINDOW"] ?? 256);
const LAT_N = 2_000;

export async function run(): Promise<void> {
  const redis = await startRedis({ aof: false });
  try {
    // --- baseline: raw ioredis
    const pub = new Redis(redis.url);
    const sub = new Redis(redis.url);
    let got = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const sendAt = new Map<number, number>();
    const lat: number[] = [];
    sub.on("message", (_c: string, m: string) => {
      const msg = JSON.parse(m) as { payload: { args: { doc: string } } };
      const at = sendAt.get(Number(msg.payload.args.doc.slice(4)));
      if (at !== undefined) lat.push(performance.now() - at);
      if (++got === N) done();
    });
    await sub.subscribe("bench:raw");
    const payloads = Array.from({ length: N }, (_, i) => payload(i));
    let t0 = performance.now();
    await windowed(N, WINDOW, (i) => pub.publish("bench:raw", JSON.stringify(payloads[i])));
    await all;
    const rawRate = N / ((performance.now() - t0) / 1000);

    // --- ours: MeshBus seal → Redis → verify → handler
    const a = benchBus(redis.url);
    const b = benchBus(redis.url);
    await startReady(a, b);
    let ours = 0;
    let oursDone!: () => void;
    const oursAll = new Promise<void>((r) => (oursDone = r));
    const oursSendAt = new Map<number, number>();
    const oursLat: number[] = [];
    await b.subscribe("bench:mesh", (d) => {
      const at = oursSendAt.get(Number(((d.message["payload"] as { args: { doc: string } }).args.doc).slice(4)));
      if (at !== undefined) oursLat.push(performance.now() - at);
      if (++ours === N) oursDone();
    });
    t0 = performance.now();
    await windowed(N, WINDOW, (i) => a.publish("bench:mesh", payloads[i]!));
    await oursAll;
    const meshRate = N / ((performance.now() - t0) / 1000);
    report("bus.pubsub", "msg/s", rawRate, meshRate, { messages: N, window: WINDOW, target_ratio: 0.6 });

    // --- latency at a fixed moderate rate (one message every 0.5 ms), both paths
    lat.length = 0;
    oursLat.length = 0;
    got = 0;
    ours = 0;
    for (let i = 0; i < LAT_N; i++) {
      const id = N + i;
      const p = payload(id);
      sendAt.set(id, performance.now());
      await pub.publish("bench:raw", JSON.stringify(p));
      oursSendAt.set(id, performance.now());
      await a.publish("bench:mesh", p);
      if (i % 4 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 500));
    const rs = lat.sort((x, y) => x - y);
    const os = oursLat.sort((x, y) => x - y);
    report("bus.pubsub.latency_p50", "ms", percentile(rs, 50), percentile(os, 50), { samples: os.length });
    report("bus.pubsub.latency_p99", "ms", percentile(rs, 99), percentile(os, 99), { samples: os.length });
    pub.disconnect();
    sub.disconnect();
    await Promise.all([a.close(), b.close()]);
  } finally {
    await redis.stop();
  }
}
