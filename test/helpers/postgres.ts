/**
 * A PostgreSQL cluster of the suite's own on a free port: initdb into a scratch directory (as
 * the `postgres` system user when run as root, since PostgreSQL refuses to run as root), started
 * with pg_ctl, trust authentication on 127.0.0.1, stopped (or killed) by the test.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis.ts";

export interface TestPostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** The data directory and the folder holding it (socket, log). */
  data: string;
  dir: string;
  stop(): Promise<void>;
}

/** Stops the server at once (`-m immediate`, as a crash would) or starts it again on its port. */
export function pgCtl(pg: TestPostgres, what: "stop" | "start"): void {
  const args = what === "stop" ? ["-D", pg.data, "-m", "immediate", "-w", "stop"] : ["-D", pg.data, "-l", join(pg.dir, "log"), "-w", "-o", `-p ${pg.port} -k ${pg.dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"];
  const asRoot = process.getuid?.() === 0;
  const r = asRoot ? spawnSync("runuser", ["-u", "postgres", "--", bin("pg_ctl"), ...args], { encoding: "utf8" }) : spawnSync(bin("pg_ctl"), args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`pg_ctl ${what} failed: ${r.stderr || r.stdout}`);
}

function bin(name: string): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, "bin", name))) return join(root, v, "bin", name);
  return name;
}

export async function startPostgres(): Promise<TestPostgres> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "pilox-pg-"));
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] as const : [cmd, args] as const;
    const r = spawnSync(full[0], full[1] as string[], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  run(bin("initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  run(bin("pg_ctl"), ["-D", data, "-l", join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    data,
    dir,
    stop: async () => {
      try {
        run(bin("pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
