/**
 * binary.startup: exec → first 200 on /healthz, median of 10, for the single executable against
 * a bare node:http server on the same embedded runtime. binary.rss: resident memory idle and
 * after 100k bus messages (published through the agent API, read by an SSE subscriber),
 * against the bare server's idle RSS. binary.size: the executables against the plain runtime.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/helpers/redis.ts";
import { bareServerScript, BINARY, requireBuild, ROOT, rssKiB, rssSplitMb, runtimeNode, start, stop, waitHttp } from "./http.ts";
import { percentile, report } from "./lib.ts";

const RUNS = 10;
/** Counts SSE events on the socket given as argv[1]; prints the count every 200 ms. */
const SUBSCRIBER = `const http = require("node:http"); let n = 0;
http.request({ socketPath: process.argv[1], path: "/v1/bus/subscribe?channel=bench" }, (res) => {
  res.setEncoding("utf8"); res.on("data", (d) => { n += d.split("event: message").length - 1; });
}).end();
setInterval(() => process.stdout.write(n + "\\n"), 200);`;
const MESSAGES = Number(process.env["BENCH_N"] ?? 100_000);

async function startupMs(cmd: string, args: (port: number) => string[], path: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const p = start(cmd, args(port));
    await waitHttp(port, path);
    times.push(performance.now() - t0);
    await stop(p);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

function post(socketPath: string, agent: Agent, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, agent, method: "POST", path: "/v1/bus/publish", headers: { "content-type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
}

export async function run(): Promise<void> {
  requireBuild();
  const node = runtimeNode();
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-"));
  try {
    const cfg = join(dir, "b.toml");
    const sock = join(dir, "api.sock");
    writeFileSync(cfg, `[api]\nsocket = "${sock}"\nmax_subscribers = 4\n[log]\nlevel = "warn"\n`);
    const bareStart = await startupMs(node, (port) => ["-e", bareServerScript(port, "{}")], "/");
    const meshStart = await startupMs("env", (port) => ["-i", BINARY, "--config", cfg, "--state-dir", join(dir, "s1"), "serve", "--listen", `127.0.0.1:${port}`], "/healthz");
    report("binary.startup", "ms", bareStart, meshStart, { runs: RUNS, statistic: "median", target_ms: 250 });

    // Idle RSS
    const basePort = await freePort();
    const bare = start(node, ["-e", bareServerScript(basePort, "{}")]);
    await waitHttp(basePort, "/");
    await new Promise((r) => setTimeout(r, 1_000));
    const bareRss = rssKiB(bare.pid!);
    const bareSplit = rssSplitMb(bare.pid!);
    await stop(bare);
    const port = await freePort();
    const mesh = start(BINARY, ["--config", cfg, "--state-dir", join(dir, "s2"), "serve", "--listen", `127.0.0.1:${port}`]);
    try {
      await waitHttp(port);
      await new Promise((r) => setTimeout(r, 1_000));
      const idle = rssKiB(mesh.pid!);
      report("binary.rss.idle", "MB", bareRss / 1024, idle / 1024, { target_mb: 70, split: rssSplitMb(mesh.pid!), baseline_split: bareSplit });

      // 100k messages through the agent API, read by an SSE subscriber in its own process
      // (so the load generator's busy event loop does not slow the reader down).
      let seen = 0;
      const sub = spawn(node, ["-e", SUBSCRIBER, sock], { stdio: ["ignore", "pipe", "ignore"] });
      sub.stdout!.setEncoding("utf8");
      sub.stdout!.on("data", (d: string) => (seen = Number(d.trim().split("\n").pop())));
      await new Promise((r) => setTimeout(r, 500));
      const agent = new Agent({ keepAlive: true, maxSockets: 16 });
      const body = JSON.stringify({ channel: "bench", message: { type: "agent.task", payload: { agentId: "a", task: "summarise", n: 0 } } });
      let sent = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (sent < MESSAGES) {
            sent++;
            const st = await post(sock, agent, body);
            if (st !== 202) throw new Error(`publish → ${st}`);
          }
        }),
      );
      const end = Date.now() + 10_000;
      while (seen < MESSAGES && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1_000));
      const after = rssKiB(mesh.pid!);
      report("binary.rss.after_100k", "MB", bareRss / 1024, after / 1024, { target_mb: 100, messages: MESSAGES, delivered_to_sse: seen, split: rssSplitMb(mesh.pid!) });
      // Is it given back? The same after 20 s without traffic.
      await new Promise((r) => setTimeout(r, 20_000));
      report("binary.rss.after_100k_idle_20s", "MB", bareRss / 1024, rssKiB(mesh.pid!) / 1024, { split: rssSplitMb(mesh.pid!) });
      sub.kill();
      agent.destroy();
    } finally {
      await stop(mesh);
    }
    const runtimeSize = statSync(node).size;
    for (const a of ["x64", "arm64"]) {
      const f = join(ROOT, "dist", `pilox-mesh-linux-${a}`);
      report(`binary.size.${a}`, "MB", runtimeSize / 1e6, statSync(f).size / 1e6, { baseline_is: "the plain Node runtime (x64)" });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
