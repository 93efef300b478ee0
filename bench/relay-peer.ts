/**
 * Appliance B of `federation.relay`'s two-process figure, in a process of its own as a real
 * peer is: started with its configuration and state directory, it answers the driver on
 * stdin/stdout, one JSON line each way:
 *   (at start) → {"ready":true}
 *   {"cmd":"expect","n":N} → {"ok":true}, then {"got":N,"cpuUs":µs} once N messages have arrived
 *   {"cmd":"stop"} → exits
 */
import { createInterface } from "node:readline";
import { Appliance } from "../src/daemon/appliance.ts";
import { silentLogger } from "../src/log/index.ts";

const [config, stateDir] = process.argv.slice(2);
const say = (x: unknown) => process.stdout.write(JSON.stringify(x) + "\n");
const b = await Appliance.start({ load: { path: config!, stateDir: stateDir! }, log: silentLogger });
let got = 0;
let want = Number.POSITIVE_INFINITY;
let cpu = process.cpuUsage();
await b.bus.subscribe("bench", () => {
  if (++got !== want) return;
  const c = process.cpuUsage(cpu);
  say({ got, cpuUs: c.user + c.system });
});
say({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const m = JSON.parse(line) as { cmd: string; n?: number };
  if (m.cmd === "expect") {
    got = 0;
    want = m.n ?? 0;
    cpu = process.cpuUsage();
    say({ ok: true });
  } else if (m.cmd === "stop") {
    await b.stop(200);
    process.exit(0);
  }
}
