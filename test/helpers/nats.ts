/** Each WAN suite runs its own nats-server with JetStream on a free port, so it can kill and restart it. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killProcess } from "./redis.ts";

export interface TestNats {
  port: number;
  url: string;
  dir: string;
  /** Sends a signal (SIGKILL by default) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Pauses (SIGSTOP) or resumes (SIGCONT) the server: what clients send waits in the sockets. */
  pause(on: boolean): void;
  /** Starts it (again) on the same port and store directory. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The server's process id while it runs (benchmarks read its CPU time). */
  pid(): number | undefined;
}

/** True once the server greets with INFO. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: "127.0.0.1" });
    c.once("data", (d) => {
      c.destroy();
      resolve(String(d).startsWith("INFO"));
    });
    c.once("error", () => resolve(false));
  });
}

/**
 * A nats-server with JetStream (file store in a scratch directory); not started when `started`
 * is false. `config(dir)`: a configuration file's text instead of the command line (a cluster
 * node, a leaf node); it must listen on `port`.
 */
export async function startNats(o: { started?: boolean; port?: number; config?: (dir: string) => string } = {}): Promise<TestNats> {
  const port = o.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "pilox-nats-"));
  let proc: ChildProcess | undefined;
  const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir];
  if (o.config) {
    writeFileSync(join(dir, "nats.conf"), o.config(dir));
    args.splice(0, args.length, "-c", join(dir, "nats.conf"));
  }
  const start = async () => {
    proc = spawn("nats-server", args, { stdio: "ignore" });
    const end = Date.now() + 15_000;
    while (!(await greets(port))) {
      if (Date.now() > end) throw new Error(`nats-server on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    await killProcess(proc, signal);
    proc = undefined;
  };
  if (o.started ?? true) await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    kill,
    pause: (on) => void proc?.kill(on ? "SIGSTOP" : "SIGCONT"),
    start,
    stop: async () => {
      await kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
    pid: () => proc?.pid,
  };
}

export interface TestNatsCluster {
  name: string;
  nodes: (TestNats & { serverName: string })[];
  /** Every node's client URL: what a site lists in wan.nats_urls. */
  urls: string[];
  stop(): Promise<void>;
}

/**
 * `size` nats-servers with JetStream, routed into one cluster (server names n1…nN), started
 * together; resolves once the cluster has a JetStream meta leader.
 */
export async function startNatsCluster(size = 3, name = "pmtest"): Promise<TestNatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
  const nodes = await Promise.all(
    ports.map(async (port, i) =>
      Object.assign(
        await startNats({
          port,
          started: false,
          config: (dir) => `server_name: n${i + 1}
listen: 127.0.0.1:${port}
jetstream { store_dir: "${dir}" }
cluster {
  name: ${name}
  listen: 127.0.0.1:${routePorts[i]}
  routes: [${routes.filter((_, j) => j !== i).join(", ")}]
}
`,
        }),
        { serverName: `n${i + 1}` },
      ),
    ),
  );
  await Promise.all(nodes.map((n) => n.start()));
  const urls = nodes.map((n) => n.url);
  await waitForJetStream(urls);
  return { name, nodes, urls, stop: async () => void (await Promise.all(nodes.map((n) => n.stop()))) };
}

/** Until JetStream answers through these servers (a cluster elected its meta leader). */
export async function waitForJetStream(urls: string[], timeoutMs = 30_000, domain?: string): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const nc = await connect({ servers: urls, timeout: 2_000 });
      try {
        await (await jetstreamManager(nc, { timeout: 2_000, ...(domain ? { domain } : {}) })).getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (err) {
      if (Date.now() > end) throw new Error(`JetStream did not come up on ${urls.join(", ")}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
