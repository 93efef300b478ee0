/** Helpers for the HTTP and binary benchmarks: child servers and a keep-alive load generator. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXEC_ARGV } from "../build/exec-argv.ts";
import { runtime } from "../build/runtime.ts";
import { freePort } from "../test/helpers/redis.ts";
import { interleaved } from "./lib.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BINARY = join(ROOT, "dist", "pilox-mesh-linux-x64");
export const BUNDLE = join(ROOT, "dist", "pilox-mesh.cjs");
/** The bundle as the executable runs it: after the V8 flags baked into the executable. */
export const BUNDLE_ARGV: readonly string[] = [...EXEC_ARGV, BUNDLE];

/** The Node 24 runtime the binaries embed (build/.cache), so baselines run on the same engine. */
export function runtimeNode(): string {
  return runtime("x64");
}

export function requireBuild(): void {
  if (!existsSync(BINARY) || !existsSync(BUNDLE)) throw new Error("run `npm run build` first");
}

/** A bare node:http server answering every request with `body` (the baseline). */
export function bareServerScript(port: number, body: string): string {
  return `require("node:http").createServer((q, r) => { r.writeHead(200, {"content-type":"application/json","cache-control":"public, max-age=120","etag":"\\"x\\"","access-control-allow-origin":"*"}); r.end(${JSON.stringify(body)}); }).listen(${port}, "127.0.0.1", () => process.stderr.write("ready\\n"));`;
}

/**
 * GET `path` on our server against a bare server answering the same `body`: both warmed up,
 * then interleaved rounds of keep-alive load; every round's req/s of each side.
 */
export async function versusBare(node: string, port: number, path: string, body: string, o: { rounds: number; roundMs: number; connections: number }): Promise<{ base: number[]; mine: number[] }> {
  const basePort = await freePort();
  const bare = start(node, ["-e", bareServerScript(basePort, body)]);
  try {
    await waitHttp(basePort, "/");
    await load(basePort, "/", o.connections, 1_000);
    await load(port, path, o.connections, 1_000);
    return await interleaved(o.rounds, () => load(basePort, "/", o.connections, o.roundMs), () => load(port, path, o.connections, o.roundMs));
  } finally {
    await stop(bare);
  }
}

export async function waitHttp(port: number, path = "/healthz", timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
      });
      req.on("error", () => resolve(false));
      req.end();
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`no 200 from :${port}${path}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...env } });
}

export async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  await new Promise<void>((r) => {
    p.once("exit", () => r());
    p.kill("SIGTERM");
    setTimeout(() => p.kill("SIGKILL"), 5_000).unref();
  });
}

/** Requests/s of GET `path` over `connections` keep-alive connections for `durationMs`. */
export async function load(port: number, path: string, connections: number, durationMs: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let done = 0;
  const end = Date.now() + durationMs;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, agent }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve();
        });
      });
      req.on("error", reject);
      req.end();
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) {
        await one();
        done++;
      }
    }),
  );
  const rate = done / ((performance.now() - t0) / 1000);
  agent.destroy();
  return rate;
}

/**
 * The resident set split as the kernel keeps it (/proc/PID/status), MB: `anon` is the process's
 * own memory (heap, malloc); `file` the pages of files it maps, here mostly the executable's
 * code and read-only data, clean, shared and dropped by the kernel under pressure.
 */
export function rssSplitMb(pid: number): { anon: number; file: number } {
  const st = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? 0);
  return { anon: Math.round(kb("RssAnon") / 102.4) / 10, file: Math.round(kb("RssFile") / 102.4) / 10 };
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}
