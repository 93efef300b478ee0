/**
 * A sysadmin's first day, through the shipped executable: each command's own help, `status`,
 * debug logs, JSON logs for a fatal start error, exit 69 for a second instance, "ready" only
 * when /readyz says so, reloads that name restart-only settings, and the metrics an operator
 * graphs.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { HELP } from "../src/cli/help.ts";
import { http } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { ROOT } from "./helpers/cli.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const X64 = `${ROOT}/dist/pilox-mesh-linux-x64`;
const s = scratch();
let redis: TestRedis;
const run = async (args: string[]) => {
  try {
    const r = await promisify(execFile)(X64, args, { env: { PATH: process.env["PATH"] ?? "" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};
function serve(config: string, state: string) {
  const p = spawn(X64, ["--config", config, "--state-dir", state, "serve"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  p.stderr.on("data", (d) => (log += d));
  const exited = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
  return { p, log: () => log, exited };
}

before(async () => {
  redis = await startRedis();
  s.write("k1.key", SECRET_A);
});
after(async () => {
  await redis.stop();
  s.cleanup();
});

describe("help", () => {
  it("every command has its own help, naming its options and exit codes", async () => {
    for (const cmd of Object.keys(HELP)) {
      const r = await run([cmd, "--help"]);
      assert.equal(r.code, 0, cmd);
      assert.match(r.stdout, new RegExp(`^usage:\\s*pilox-mesh ${cmd}`), cmd);
      assert.doesNotMatch(r.stdout, /^commands:/m, `${cmd} prints its own help, not the global usage`);
    }
    assert.match((await run(["check-config", "--help"])).stdout, /--quiet/);
    const guide = readFileSync(`${ROOT}/docs/operator-guide.md`, "utf8");
    assert.match(guide, /check-config --quiet/);
  });
});

describe("a running appliance", { timeout: 120_000 }, () => {
  let port: number;
  let cfg: string;
  const sock = s.path("op.sock");
  let app: ReturnType<typeof serve>;
  const toml = (extra = "") =>
    `[log]\nlevel = "debug"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${sock}"\n[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n[[bus.channels]]\nname = "jobs"\ndurable = true\n${extra}`;
  before(async () => {
    port = await freePort();
    cfg = s.write("op.toml", toml());
    app = serve(cfg, s.path("op-state"));
    await waitFor(() => app.log().includes("msg=ready"), 20_000, "ready");
  });
  after(async () => {
    app.p.kill("SIGTERM");
    await app.exited;
  });

  it("log.level = debug logs debug lines", () => {
    assert.match(app.log(), /level=debug msg="configuration loaded"/);
    assert.match(app.log(), /level=debug msg="redis connection ready"/);
  });

  it("status: readable, and --json for scripts", async () => {
    const r = await run(["status", "--socket", sock]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^version: +pilox-mesh /m);
    assert.match(r.stdout, /^bus: +redis, ready/m);
    assert.match(r.stdout, /^channels: +jobs \(durable\)/m);
    assert.match(r.stdout, /^spool: +0 messages/m);
    assert.match(r.stdout, /^federation: +off/m);
    const j = JSON.parse((await run(["status", "--json", "--socket", sock])).stdout);
    assert.equal(j.bus.backend, "redis");
    assert.equal(j.bus.ready, true);
    assert.deepEqual(j.configFiles, [cfg]);
  });

  it("a second instance on the same socket exits 69, naming the socket", async () => {
    const second = serve(s.write("op2.toml", toml().replace(`listen = "127.0.0.1:${port}"`, `listen = "127.0.0.1:${await freePort()}"`)), s.path("op2-state"));
    assert.equal(await second.exited, 69, second.log());
    assert.match(second.log(), /in use by another process/);
    // It says how instances on one host are kept apart.
    assert.match(second.log(), /node\.runtime_dir \(or api\.socket\)/);
  });

  it("a reload that changes restart-only settings names them; status shows it", async () => {
    s.write("op.toml", toml().replace(`socket = "${sock}"`, `socket = "${sock}"\nsocket_mode = "0600"`));
    const r = await run(["reload", "--socket", sock]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => /some changed settings take effect at the next restart.*settings=api\.socket_mode/.test(app.log()), 5_000, "named");
    const j = JSON.parse((await run(["status", "--json", "--socket", sock])).stdout);
    assert.deepEqual(j.lastReload.pendingRestart, ["api.socket_mode"]);
    // The CLI reports what the appliance answered, naming each setting that needs a restart.
    assert.match(r.stdout, /reloaded; these changed settings take effect at the next restart: api\.socket_mode/);
  });

  it("metrics: process and runtime, HTTP per route, backend up, last reload, counters from zero", async () => {
    await http({ port }, "GET", "/healthz");
    await http({ port }, "GET", "/no/such/path");
    const m = (await http({ port }, "GET", "/metrics")).body;
    for (const re of [
      /^pilox_mesh_process_cpu_seconds_total /m,
      /^pilox_mesh_process_resident_memory_bytes /m,
      /^pilox_mesh_nodejs_eventloop_lag_seconds /m,
      /^pilox_mesh_http_requests_total\{listener="public",route="\/healthz",method="GET",status="200"\} 1/m,
      /^pilox_mesh_http_requests_total\{listener="public",route="unmatched",method="GET",status="404"\} 1/m,
      /^pilox_mesh_http_request_duration_seconds_bucket\{le="0.005",listener="public",route="\/healthz",method="GET"\} \d/m,
      /^pilox_mesh_bus_backend_up\{backend="redis"\} 1/m,
      /^pilox_mesh_config_last_reload_success 1/m,
      /^pilox_mesh_config_last_reload_timestamp_seconds \d/m,
      /^pilox_mesh_config_reloads_total\{result="rejected"\} 0/m,
      /^pilox_mesh_bus_published_total\{durable="true"\} 0/m,
      /^pilox_mesh_federation_requests_total\{direction="inbound",outcome="refused",reason="bad_signature"\} 0/m,
      /^pilox_mesh_wan_rejected_total\{reason="bad_signature"\} 0/m,
      /^pilox_mesh_wan_dlq_total\{reason="attempts_exhausted"\} 0/m,
      /^pilox_mesh_wan_duplicates_total\{layer="receiver"\} 0/m,
    ]) {
      assert.match(m, re);
    }
  });

  it("with the file on disk broken: status and peers still answer, and reload is refused by the appliance itself (logged and counted)", async () => {
    const good = readFileSync(cfg, "utf8");
    s.write("op.toml", good + '\n[bus]\nmax_age_seconds = "soon"\n');
    try {
      // Found through the broken file's own api.socket, not --socket.
      const st = await run(["status", "--config", cfg]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stderr, /note: the configuration on disk does not load, so it may differ from what runs/);
      assert.match(st.stdout, /^version:/m);
      assert.equal((await run(["peers", "--config", cfg])).code, 0);
      const r = await run(["reload", "--config", cfg]);
      assert.equal(r.code, 78, r.stderr);
      assert.match(r.stderr, /rejected, the running configuration stays[\s\S]*bus\.max_age_seconds/);
      await waitFor(() => /msg="reload rejected; keeping the running configuration"/.test(app.log()), 5_000, "the appliance logs the refusal");
      const m = (await http({ port }, "GET", "/metrics")).body;
      assert.match(m, /^pilox_mesh_config_reloads_total\{result="rejected"\} [1-9]/m);
    } finally {
      s.write("op.toml", good);
    }
  });
});

describe("starting", { timeout: 60_000 }, () => {
  it("with Redis away: no \"ready\" while /readyz is 503, then ready once it is", async () => {
    const port = await freePort();
    const redisPort = await freePort();
    const cfg = s.write("late.toml", `[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("late.sock")}"\n[bus.redis]\nurl = "redis://127.0.0.1:${redisPort}"\nconnect_timeout_ms = 500\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n`);
    const app = serve(cfg, s.path("late-state"));
    try {
      await waitFor(() => app.log().includes("started, not ready yet"), 20_000, "started");
      assert.equal((await http({ port }, "GET", "/readyz")).status, 503);
      assert.doesNotMatch(app.log(), /msg=ready/);
      const late = await startRedis({ port: redisPort });
      try {
        await waitFor(() => app.log().includes("msg=ready"), 20_000, "ready");
        assert.equal((await http({ port }, "GET", "/readyz")).status, 200);
      } finally {
        app.p.kill("SIGTERM");
        await app.exited;
        await late.stop();
      }
    } finally {
      app.p.kill("SIGKILL");
    }
  });

  it("a fatal start error with log.format = json is one JSON line", async () => {
    const port = await freePort();
    const { createServer } = await import("node:net");
    const blocker = createServer().listen(port, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    try {
      const cfg = s.write("json.toml", `[log]\nformat = "json"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("json.sock")}"\n`);
      const r = await run(["--config", cfg, "--state-dir", s.path("json-state"), "serve"]);
      assert.equal(r.code, 69);
      const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const last = lines[lines.length - 1]!;
      assert.equal(last["level"], "error");
      assert.equal(last["msg"], "cannot start");
      assert.equal(last["exit"], 69);
    } finally {
      blocker.close();
    }
  });
});
