/** Each WAN suite runs its own nats-server with JetStream on a free port, so it can kill and restart it. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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

/** A nats-server with JetStream (file store in a scratch directory); not started when `started` is false. */
export async function startNats(o: { started?: boolean; port?: number } = {}): Promise<TestNats> {
  const port = o.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "pilox-nats-"));
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], { stdio: "ignore" });
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
