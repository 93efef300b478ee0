/**
 * federation.relay: messages/s from appliance A to appliance B end to end (A's bus → on-disk
 * queue → batched, token-bound HTTP → B's relay → B's bus → subscriber), against A's local bus
 * rate (publish → local subscriber) in the same run. Both appliances run embedded buses in
 * this process, so the figure is the relay's whole cost on one core.
 *
 * federation.relay.two_processes: the same with B in a process of its own (bench/relay-peer.ts),
 * as two instances on one machine are, in interleaved rounds with A's local bus (best rounds),
 * with each side's CPU per message.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { freePort } from "../test/helpers/redis.ts";
import { payload, report, reportRounds, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 20_000);
const BATCH = 256;
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);
const PEER = fileURLToPath(new URL("./relay-peer.ts", import.meta.url));

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
    const bCfg = cfg("b", pb, join(dir, "b.key"), pa, ka.publicKeyHex, '"bench"', "");
    const b = await Appliance.start({ load: { path: bCfg, stateDir: join(dir, "sb") }, log: silentLogger });
    const payloads = Array.from({ length: N }, (_, i) => payload(i));

    /** msg/s of N publishes on A's `channel`, counted by a subscriber on `at`. */
    const rate = async (at: Appliance, channel: string) => {
      let got = 0;
      let done!: () => void;
      const all = new Promise<void>((r) => (done = r));
      const sub = await at.bus.subscribe(channel, () => void (++got === N && done()));
      const t0 = performance.now();
      await windowed(N, 256, (i) => a.bus.publish(channel, payloads[i]!));
      await all;
      const value = N / ((performance.now() - t0) / 1000);
      await sub.close();
      return value;
    };
    const localRate = () => rate(a, "bench-local");

    // Baseline: A's local bus, publish → subscriber on A. Then the relay: publish on A, count at B.
    const base = await localRate();
    const value = await rate(b, "bench");
    report("federation.relay", "msg/s", base, value, { messages: N, batch_size: BATCH, transport: "HTTP/1.1 loopback, one token per batch", processes: 1 });
    await b.stop(200);

    // B in its own process, on the same port and configuration.
    const peer = spawn(process.execPath, [...process.execArgv, PEER, bCfg, join(dir, "sb2")], { stdio: ["pipe", "pipe", "inherit"] });
    try {
      const lines = createInterface({ input: peer.stdout! })[Symbol.asyncIterator]();
      const next = async () => JSON.parse((await lines.next()).value as string) as { got?: number; cpuUs?: number };
      const ask = (x: unknown) => peer.stdin!.write(JSON.stringify(x) + "\n");
      await next();
      const rounds = { base: [] as number[], mine: [] as number[] };
      const cpu = { a: [] as number[], b: [] as number[] };
      for (let r = 0; r < ROUNDS; r++) {
        rounds.base.push(await localRate());
        ask({ cmd: "expect", n: N });
        await next();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await windowed(N, 256, (i) => a.bus.publish("bench", payloads[i]!));
        const atB = await next();
        rounds.mine.push(N / ((performance.now() - t0) / 1000));
        const c = process.cpuUsage(c0);
        cpu.a.push((c.user + c.system) / N);
        cpu.b.push((atB.cpuUs ?? 0) / N);
      }
      const best = rounds.mine.indexOf(Math.max(...rounds.mine));
      reportRounds("federation.relay.two_processes", "msg/s", rounds, {
        messages_per_round: N,
        rounds: ROUNDS,
        batch_size: BATCH,
        a_cpu_us_per_msg: Math.round(cpu.a[best]! * 10) / 10,
        b_cpu_us_per_msg: Math.round(cpu.b[best]! * 10) / 10,
      });
      ask({ cmd: "stop" });
      await new Promise((r) => peer.once("exit", r));
    } finally {
      peer.kill();
    }
    await a.stop(200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
