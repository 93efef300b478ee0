/**
 * docs/operator-guide.md, "Walkthrough: three sites on one host", run as written: every `sh`
 * block of that section after the first (the first starts the servers the sites need, which
 * this suite starts itself on free ports), in order, as root, with the guide's ports, the
 * `pilox-mesh` user and /etc, /var/lib and /run mapped onto scratch ones. paris and tokyo on
 * their own Redis exchange a durable message over NATS JetStream; core serves a registry on
 * PostgreSQL and routes a handle to an agent through its gateway.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { chmodSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { ROOT } from "./helpers/cli.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";
import { freePort } from "./helpers/redis.ts";

const X64 = `${ROOT}/dist/pilox-mesh-linux-x64`;
const GUIDE = readFileSync(`${ROOT}/docs/operator-guide.md`, "utf8");
const asRoot = process.getuid?.() === 0;
const s = scratch("pilox-walk-");
const USER = `pmw${process.pid % 100000}`;
let redisParis: TestRedis, redisTokyo: TestRedis, nats: TestNats, pg: TestPostgres, agent: TestUpstream;
const ports: Record<string, number> = {};
/** Process groups of the blocks run (a started site outlives its block). */
const groups: number[] = [];

/** The section's sh blocks, in order. */
function walkthroughBlocks(): string[] {
  const start = GUIDE.indexOf("\n## Walkthrough: three sites on one host\n");
  assert.ok(start >= 0, "the guide has the walkthrough");
  const next = GUIDE.indexOf("\n## ", start + 5);
  const section = GUIDE.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** A block as it runs here: the guide's user, servers and directories mapped onto the scratch ones. */
function mapped(block: string): string {
  let t = block
    .replace(/(-[og] |chgrp |chown |runuser -u )pilox-mesh\b/g, `$1${USER}`)
    .replace(/runuser -u postgres -- psql/g, `runuser -u postgres -- psql -h 127.0.0.1 -p ${pg.port} -d postgres`)
    // The command (not a path or a name inside a string): the executable of this build.
    .replace(/(^|[\s;&|(])pilox-mesh(?=\s)/gm, `$1${X64}`)
    .replaceAll("/etc/pilox-mesh", s.path("etc", "pilox-mesh"))
    .replaceAll("/var/lib/pilox-mesh", s.path("var", "lib", "pilox-mesh"))
    .replaceAll("/run/pilox-mesh", s.path("run", "pilox-mesh"));
  for (const [from, to] of Object.entries(ports)) t = t.replace(new RegExp(`\\b${from}\\b`, "g"), String(to));
  return t;
}

/** Runs a block with sh, its output in files (so sites it starts in the background do not hold it open). */
async function runBlock(i: number, text: string, timeoutMs = 60_000): Promise<{ code: number | null; out: string; err: string }> {
  const [out, err] = [s.path(`block-${i}.out`), s.path(`block-${i}.err`)];
  const fds = [openSync(out, "w"), openSync(err, "w")] as const;
  const child = spawn("sh", ["-c", `set -e\n${text}`], { stdio: ["ignore", fds[0], fds[1]], detached: true });
  groups.push(child.pid!);
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on("exit", (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  closeSync(fds[0]);
  closeSync(fds[1]);
  return { code, out: readFileSync(out, "utf8"), err: readFileSync(err, "utf8") };
}

before(async () => {
  if (!asRoot) return;
  [redisParis, redisTokyo, nats, pg, agent] = await Promise.all([startRedis({ aof: true }), startRedis({ aof: true }), startNats(), startPostgres(), startUpstream()]);
  const port = (url: string) => Number(new URL(url).port);
  Object.assign(ports, {
    7101: await freePort(),
    7102: await freePort(),
    7103: await freePort(),
    7200: agent.port,
    6391: port(redisParis.url),
    6392: port(redisTokyo.url),
    4222: port(nats.url),
    5432: pg.port,
  });
  execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
  // The scratch directory stands for / : the service user must be able to walk into it.
  chmodSync(s.dir, 0o755);
});

after(async () => {
  for (const g of groups) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  spawnSync("pkill", ["-KILL", "-f", `--config ${s.path("etc")}`]);
  await Promise.all([redisParis?.stop(), redisTokyo?.stop(), nats?.stop(), pg?.stop(), agent?.close()]);
  if (asRoot) spawnSync("userdel", [USER]);
  s.cleanup();
});

describe("the three-site walkthrough, run as the guide writes it", { skip: !asRoot && "needs root (a system user, runuser)", timeout: 240_000 }, () => {
  it("builds paris, tokyo and core, carries a message paris → tokyo over NATS, and calls the agent by its handle through core", async () => {
    assert.ok(existsSync(X64), "npm run build first");
    const blocks = walkthroughBlocks();
    assert.equal(blocks.length, 9, "the prerequisites and eight steps");
    assert.match(blocks[0]!, /redis-server[\s\S]*nats-server[\s\S]*postgresql/, "the first block starts the servers (done here by the suite)");
    const step = async (n: number, timeoutMs?: number) => {
      const r = await runBlock(n, mapped(blocks[n]!), timeoutMs);
      assert.equal(r.code, 0, `step ${n} failed:\n${blocks[n]}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`);
      return r;
    };

    // 1. Directories, identities, secrets.
    await step(1);
    for (const site of ["paris", "tokyo", "core"]) assert.match(readFileSync(s.path("etc", "pilox-mesh", site, "identity.pub"), "utf8"), /^[0-9a-f]{64}\n?$/);
    // 2. The registry's database.
    await step(2);
    // 3. Configurations, checked.
    const checked = await step(3);
    assert.equal((checked.out + checked.err).match(/configuration OK/g)?.length, 3, checked.out + checked.err);
    // 4. Started, each answering on its socket.
    await step(4, 90_000);
    // 5. paris and tokyo paired over the WAN.
    const paired = await step(5);
    assert.ok(paired.out.includes(s.path("etc", "pilox-mesh", "paris", "conf.d", `peer-127.0.0.1-${ports[7102]}.toml`)), paired.out);
    assert.match(paired.out, /^http:\/\/127\.0\.0\.1:\d+\s+wan\s/m);
    // 6. paris → tokyo, once, stamped with paris's origin.
    const carried = await step(6, 30_000);
    const got = carried.out.split("\n").filter((l) => l.includes('"order.created"')).map((l) => JSON.parse(l) as { payload: { id: number }; meshExt?: { origin?: string } });
    assert.equal(got.length, 1, carried.out);
    assert.equal(got[0]!.payload.id, 1);
    assert.equal(got[0]!.meshExt?.origin, `http://127.0.0.1:${ports[7101]}`);
    // 7. A record in core's registry on PostgreSQL; the agent called through the gateway by its handle.
    const hits = agent.hits;
    const routed = await step(7);
    assert.match(routed.out, /verified:/);
    assert.match(routed.out, /"result":\{"echo":"tasks\/get"\}/);
    assert.equal(agent.hits, hits + 1, "the gateway reached the agent");
    const rows = spawnSync("runuser", ["-u", "postgres", "--", "psql", "-h", "127.0.0.1", "-p", String(pg.port), "-d", "pilox", "-tAc", "SELECT count(*) FROM pilox_registry_records"], { encoding: "utf8" });
    assert.equal(rows.stdout.trim(), "1", rows.stderr);
    // 8. Status of each, then stopped.
    const status = await step(8);
    assert.match(status.out, /postgres/i);
    assert.match(status.out, /wan:\s+connected to /);
  });
});
