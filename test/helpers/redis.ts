/** Each suite runs its own redis-server on a free port, so it can kill and restart it at will. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Sends one inline command on a fresh connection and returns what came back ("" on error). */
function ask(port: number, command: string, until: (reply: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: "127.0.0.1" });
    let out = "";
    c.once("connect", () => c.write(`${command}\r\n`));
    c.on("data", (d) => {
      out += d;
      if (until(out)) {
        c.destroy();
        resolve(out);
      }
    });
    c.once("error", () => resolve(""));
  });
}

/** Polls `ok` every 50 ms until it holds, or throws `what` after `timeoutMs`. */
async function poll(ok: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitForPort(port: number): Promise<void> {
  await poll(async () => (await ask(port, "PING", (r) => r.length > 0)).startsWith("+PONG"), `redis on ${port} did not start`);
}

/** Kills a child process (SIGKILL unless told) and waits until it has exited. */
export async function killProcess(p: ChildProcess | undefined, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once("exit", () => resolve());
    p.kill(signal);
  });
}

export interface TestRedis {
  port: number;
  url: string;
  dir: string;
  /** Sends a signal (SIGKILL by default) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The server's process id while it runs (benchmarks read its CPU time). */
  pid(): number | undefined;
}

export async function startRedis(opts: { aof?: boolean; args?: string[]; port?: number } = {}): Promise<TestRedis> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "pilox-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"];
  if (opts.aof ?? true) args.push("--appendonly", "yes", "--appendfsync", "always");
  else args.push("--appendonly", "no");
  args.push(...(opts.args ?? []));
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn("redis-server", args, { stdio: "ignore" });
    await waitForPort(port);
  };
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    await killProcess(proc, signal);
    proc = undefined;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill,
    restart: launch,
    stop: async () => {
      await kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
    pid: () => proc?.pid,
  };
}

export interface TestSentinel {
  port: number;
  stop(): Promise<void>;
}

/**
 * A Redis Sentinel (redis-server in sentinel mode) watching the master on `masterPort` under
 * `name`, quorum 1, with short timeouts so a failover takes a few seconds.
 */
export async function startSentinel(o: { masterPort: number; name: string; downAfterMs?: number; failoverTimeoutMs?: number }): Promise<TestSentinel> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "pilox-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${o.name} 127.0.0.1 ${o.masterPort} 1`,
      `sentinel down-after-milliseconds ${o.name} ${o.downAfterMs ?? 1_000}`,
      `sentinel failover-timeout ${o.name} ${o.failoverTimeoutMs ?? 3_000}`,
      "",
    ].join("\n"),
  );
  const proc = spawn("redis-server", [conf, "--sentinel", "--loglevel", "warning"], { stdio: "ignore" });
  await waitForPort(port);
  return {
    port,
    stop: async () => {
      await killProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestCluster {
  nodes: TestRedis[];
  stop(): Promise<void>;
}

/** A Redis Cluster of `size` masters, each with `replicas` replicas, created with redis-cli and ready (state ok). */
export async function startRedisCluster(size = 3, replicas = 0): Promise<TestCluster> {
  const nodes: TestRedis[] = [];
  for (let i = 0; i < size * (1 + replicas); i++) {
    nodes.push(await startRedis({ aof: true, args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"] }));
  }
  const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
  await new Promise<void>((resolve, reject) => {
    const p = spawn("redis-cli", ["--cluster", "create", ...addrs, "--cluster-replicas", String(replicas), "--cluster-yes"], { stdio: "ignore" });
    p.once("error", reject);
    p.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited ${code}`))));
  });
  // Every node must agree the cluster is whole before clients use it.
  for (const n of nodes) {
    const state = () => ask(n.port, "CLUSTER INFO", (r) => r.includes("cluster_state:"));
    await poll(async () => /cluster_state:ok/.test(await state()), `cluster node ${n.port} never reached cluster_state:ok`, 20_000);
  }
  return { nodes, stop: async () => void (await Promise.all(nodes.map((n) => n.stop()))) };
}
