/**
 * federation.relay: messages/s from appliance A to appliance B end to end (A's bus → on-disk
 * queue → batched, token-bound HTTP → B's relay → B's bus → subscriber), against A's local bus
 * rate (publish → local subscriber) in the same run. Both appliances run embedded buses in
 * this process, so the figure is the relay's own cost.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { freePort } from "../test/helpers/redis.ts";
import { payload, report, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 20_000);
const BATCH = 256;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-fed-"));
  try {
    const [pa, pb] = [await freePort(), await freePort()];
    const ka = createKeyFile(join(dir, "a.key"));
    const kb = createKeyFile(join(dir, "b.key"));
    const cfg = (n: string, port: number, key: string, peerPort: number, peerKey: string, accept: string, forward: string) => {
      const f = join(dir, `${n}.toml`);
      writeFileSync(
        f,
        `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${key}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, n + ".sock")}"\n[federation]\nbatch_size = ${BATCH}\nper_ip_rate = 100000\nmax_body_bytes = 16777216\n[[federation.peers]]\norigin = "http://127.0.0.1:${peerPort}"\npublic_keys = ["${peerKey}"]\naccept_channels = [${accept}]\nforward_channels = [${forward}]\nrate_per_second = 1000000\n`,
      );
      return f;
    };
    const a = await Appliance.start({ load: { path: cfg("a", pa, join(dir, "a.key"), pb, kb.publicKeyHex, "", '"bench"'), stateDir: join(dir, "sa") }, log: silentLogger });
    const b = await Appliance.start({ load: { path: cfg("b", pb, join(dir, "b.key"), pa, ka.publicKeyHex, '"bench"', ""), stateDir: join(dir, "sb") }, log: silentLogger });
    const payloads = Array.from({ length: N }, (_, i) => payload(i));

    // Baseline: A's local bus, publish → subscriber on A.
    let local = 0;
    let localDone!: () => void;
    const localAll = new Promise<void>((r) => (localDone = r));
    const ls = await a.bus.subscribe("bench-local", () => void (++local === N && localDone()));
    let t0 = performance.now();
    await windowed(N, 256, (i) => a.bus.publish("bench-local", payloads[i]!));
    await localAll;
    const base = N / ((performance.now() - t0) / 1000);
    await ls.close();

    // Relay: publish on A, count at B.
    let got = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    await b.bus.subscribe("bench", () => void (++got === N && done()));
    t0 = performance.now();
    await windowed(N, 256, (i) => a.bus.publish("bench", payloads[i]!));
    await all;
    const value = N / ((performance.now() - t0) / 1000);
    report("federation.relay", "msg/s", base, value, { messages: N, batch_size: BATCH, transport: "HTTP/1.1 loopback, one token per batch" });
    await Promise.all([a.stop(200), b.stop(200)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
