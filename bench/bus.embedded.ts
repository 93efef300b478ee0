/**
 * bus.embedded: sealed + verified messages/s on the in-process bus, against a bare
 * EventEmitter carrying the same JSON string (stringify → emit → parse), same run.
 */
import { EventEmitter } from "node:events";
import { benchBus, payload, report, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 100_000);

export async function run(): Promise<void> {
  const payloads = Array.from({ length: N }, (_, i) => payload(i));
  const ee = new EventEmitter();
  let got = 0;
  ee.on("m", (s: string) => {
    JSON.parse(s);
    got++;
  });
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    ee.emit("m", JSON.stringify(payloads[i]));
    if (i % 1000 === 0) await Promise.resolve();
  }
  const base = got / ((performance.now() - t0) / 1000);

  const bus = await benchBus();

  let ours = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  await bus.subscribe("bench", () => void (++ours === N && done()));
  t0 = performance.now();
  await windowed(N, 256, (i) => bus.publish("bench", payloads[i]!));
  await all;
  const rate = N / ((performance.now() - t0) / 1000);
  report("bus.embedded", "msg/s", base, rate, { messages: N, baseline_is: "EventEmitter stringify+parse, no signing" });
  await bus.close();
}
