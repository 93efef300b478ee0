/**
 * bus.durable: delivery rate on a durable channel (seal → XADD, XREADGROUP → verify → handler
 * → XACK) against raw XADD + XREADGROUP + XACK of the same payload, same Redis, same run.
 */
import { Redis } from "ioredis";
import { startRedis } from "../test/helpers/redis.ts";
import { benchBus, payload, report, waitReady, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 20_000);
const WINDOW = 256;

type Entries = [string, string[]][];

export async function run(): Promise<void> {
  const redis = await startRedis({ aof: true });
  try {
    const payloads = Array.from({ length: N }, (_, i) => payload(i));
    // --- baseline
    const w = new Redis(redis.url);
    const r = new Redis(redis.url);
    await w.xgroup("CREATE", "raw", "g", "$", "MKSTREAM");
    let got = 0;
    let t0 = performance.now();
    const reader = (async () => {
      while (got < N) {
        const res = (await r.xreadgroup("GROUP", "g", "c", "COUNT", 128, "BLOCK", 1000, "STREAMS", "raw", ">")) as [string, Entries][] | null;
        const entries = res?.[0]?.[1] ?? [];
        for (const [, f] of entries) JSON.parse(f[1]!);
        if (entries.length) await r.xack("raw", "g", ...entries.map(([id]) => id));
        got += entries.length;
      }
    })();
    await windowed(N, WINDOW, (i) => w.xadd("raw", "MAXLEN", "~", 1_000_000, "*", "m", JSON.stringify(payloads[i])));
    await reader;
    const base = N / ((performance.now() - t0) / 1000);
    w.disconnect();
    r.disconnect();

    // --- ours
    const a = await benchBus(redis.url, { jobs: { durable: true } });
    const b = await benchBus(redis.url, { jobs: { durable: true } });
    await waitReady(a, b);
    let ours = 0;
    let done!: () => void;
    const all = new Promise<void>((res) => (done = res));
    await b.subscribe("jobs", () => void (++ours === N && done()));
    t0 = performance.now();
    await windowed(N, WINDOW, (i) => a.publish("jobs", payloads[i]!));
    await all;
    const rate = N / ((performance.now() - t0) / 1000);
    report("bus.durable", "msg/s", base, rate, { messages: N, window: WINDOW, aof: "appendfsync always", target_ratio: 0.5 });
    await Promise.all([a.close(), b.close()]);
  } finally {
    await redis.stop();
  }
}
