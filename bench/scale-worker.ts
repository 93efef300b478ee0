/**
 * One process of the WAN scale simulation (bench/wan.scale.ts): runs the appliances whose
 * configurations it is given (embedded bus, WAN to the hub), is their agents, and answers the
 * driver on stdin/stdout, one JSON line each way:
 *   {"cmd":"ready"} → {"ready":true} once every site is on NATS
 *   {"cmd":"send","rate":R,"seconds":S} → every site publishes R msg/s on "mesh" for S s → {"sent":n}
 *   {"cmd":"stats"} → {"received":n,"latencies":[ms…]} (cleared after)
 *   {"cmd":"stop"} → exits
 */
import { createInterface } from "node:readline";
import { Appliance } from "../src/daemon/appliance.ts";
import { createLogger, silentLogger } from "../src/log/index.ts";

const configs = JSON.parse(process.argv[2] ?? "[]") as { config: string; state: string; own: string; from: string[] }[];
const apps: Appliance[] = [];
let received = 0;
let latencies: number[] = [];
for (const c of configs) {
  const app = await Appliance.start({ load: { path: c.config, stateDir: c.state }, log: process.env["SCALE_DEBUG"] ? createLogger({ level: "warn", format: "text" }) : silentLogger });
  apps.push(app);
  // This site's agents read what the three sites before it send.
  for (const ch of c.from) {
    await app.bus.subscribe(
      ch,
      (d) => {
        received++;
        const at = (d.message["payload"] as { at?: number } | undefined)?.at;
        if (typeof at === "number") latencies.push(Date.now() - at);
      },
      { group: "agents" },
    );
  }
}
const say = (x: unknown) => process.stdout.write(JSON.stringify(x) + "\n");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for await (const line of createInterface({ input: process.stdin })) {
  const m = JSON.parse(line) as { cmd: string; rate?: number; seconds?: number };
  if (m.cmd === "ready") {
    for (;;) {
      const st = await Promise.all(apps.map((a) => a.status()));
      if (st.every((s) => s.wan?.connected === true && s.wan.error === null)) break;
      await sleep(200);
    }
    say({ ready: true });
  } else if (m.cmd === "send") {
    const rate = m.rate ?? 10;
    const total = Math.round(rate * (m.seconds ?? 10));
    const t0 = Date.now();
    let sent = 0;
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      await Promise.all(apps.map((a, k) => a.bus.publish(configs[k]!.own, { type: "scale", payload: { i, at: Date.now() } }).then(() => void sent++)));
    }
    say({ sent });
  } else if (m.cmd === "stats") {
    say({ received, latencies });
    latencies = [];
  } else if (m.cmd === "status") {
    say({ status: await Promise.all(apps.map(async (a) => (await a.status()).wan)) });
  } else if (m.cmd === "stop") {
    await Promise.all(apps.map((a) => a.stop(200)));
    say({ stopped: true });
    process.exit(0);
  }
}
