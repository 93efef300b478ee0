/**
 * bus.embedded: messages/s on the in-process bus, publish → subscriber reading a field of the
 * message, against a bare EventEmitter carrying the same JSON string (stringify → emit →
 * parse → read the field), same run. A message that never leaves the process is framed (every
 * check a seal makes, its event id claimed against replay) but not signed: no subscriber here
 * asks for its wire form (src/bus/local.ts). A second line does the same with a subscriber
 * that takes the sealed wire text, as an SSE stream does.
 */
import { EventEmitter } from "node:events";
import { benchBus, payload, report, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 100_000);

export async function run(): Promise<void> {
  const payloads = Array.from({ length: N }, (_, i) => payload(i));
  const ee = new EventEmitter();
  let got = 0;
  let seen = 0;
  ee.on("m", (s: string) => {
    if ((JSON.parse(s) as { type?: string }).type) seen++;
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
  await bus.subscribe("bench", (d) => {
    if (d.body["type"]) seen++;
    if (++ours === N) done();
  });
  t0 = performance.now();
  await windowed(N, 256, (i) => bus.publish("bench", payloads[i]!));
  await all;
  const rate = N / ((performance.now() - t0) / 1000);
  report("bus.embedded", "msg/s", base, rate, { messages: N, baseline_is: "EventEmitter stringify+parse, no signing" });

  // The same with a subscriber that needs the wire form: each message is signed, once.
  let wired = 0;
  let wiredDone!: () => void;
  const wiredAll = new Promise<void>((r) => (wiredDone = r));
  const ws = await bus.subscribe("bench-wire", (d) => {
    if (d.text().length) seen++;
    if (++wired === N) wiredDone();
  });
  t0 = performance.now();
  await windowed(N, 256, (i) => bus.publish("bench-wire", payloads[i]!));
  await wiredAll;
  report("bus.embedded.wire", "msg/s", base, N / ((performance.now() - t0) / 1000), { messages: N, subscriber: "takes the sealed wire text (as SSE does)", read: seen });
  await ws.close();
  await bus.close();
}
