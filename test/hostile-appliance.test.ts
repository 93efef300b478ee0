/**
 * Issue 12 against the shipped executable (its own heap limit, 256 MB) on a real Redis: one
 * hostile PUBLISH, a replay after `kill -9`, a subscriber that stops reading; and against an
 * appliance in process: reloads of empty or truncated files, deep and oversized publishes,
 * configuration paths that are files.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import type { Appliance } from "../src/daemon/appliance.ts";
import { http, sse, startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { cli, ROOT } from "./helpers/cli.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const X64 = `${ROOT}/dist/pilox-mesh-linux-x64`;
const s = scratch();
let redis: TestRedis;
let raw: Redis;

before(async () => {
  redis = await startRedis({ aof: true });
  raw = new Redis(redis.url);
  s.write("k1.key", SECRET_A);
  s.write("k2.key", SECRET_B);
});
after(async () => {
  raw.disconnect();
  await redis.stop();
  s.cleanup();
});

/** The executable, as systemd would run it, until `kill`. */
function runBinary(config: string, state: string) {
  const p: ChildProcess = spawn(X64, ["--config", config, "--state-dir", state, "serve"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  p.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
  return { p, log: () => log, exited, ready: () => waitFor(() => log.includes("msg=ready"), 20_000, "binary ready") };
}

async function metric(port: number, name: string, labels: string): Promise<number> {
  const text = (await http({ port }, "GET", "/metrics")).body;
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

describe("the executable under attack", { timeout: 120_000 }, () => {
  let port: number;
  let cfg: string;
  const sock = { socketPath: s.path("bin.sock") };
  before(async () => {
    port = await freePort();
    cfg = s.write(
      "bin.toml",
      `[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${sock.socketPath}"\nsse_write_timeout_seconds = 5\n[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n`,
    );
  });

  it("one deep PUBLISH does not crash it; a message replayed after kill -9 is still refused", async () => {
    const deep = `{"meshMeta":{"v":1,"producer":"x","eventId":"d"},"meshSig":"${"0".repeat(64)}","a":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
    let bin = runBinary(cfg, s.path("bin-state"));
    try {
      await bin.ready();
      let sub = sse(sock, "/v1/bus/subscribe?channel=jobs");
      await sub.open;
      const captured: string[] = [];
      const listener = raw.duplicate();
      await listener.subscribe("jobs");
      listener.on("message", (_c, m) => captured.push(m));
      await raw.publish("jobs", deep);
      assert.equal((await http(sock, "POST", "/v1/bus/publish", JSON.stringify({ channel: "jobs", message: { n: 1 } }), { "content-type": "application/json" })).status, 202);
      await waitFor(() => sub.events.length === 1 && captured.length === 2);
      assert.equal((await http({ port }, "GET", "/healthz")).status, 200);
      assert.equal(await metric(port, "pilox_mesh_bus_rejected_total", 'reason="too_deep"'), 1);
      sub.close();
      listener.disconnect();

      // kill -9: no clean stop, so nothing is saved at exit.
      bin.p.kill("SIGKILL");
      await bin.exited;
      bin = runBinary(cfg, s.path("bin-state"));
      await bin.ready();
      sub = sse(sock, "/v1/bus/subscribe?channel=jobs");
      await sub.open;
      await raw.publish("jobs", captured[1]!); // the captured genuine message, again
      await http(sock, "POST", "/v1/bus/publish", JSON.stringify({ channel: "jobs", message: { n: 2 } }), { "content-type": "application/json" });
      await waitFor(() => sub.events.length === 1);
      await waitFor(async () => (await metric(port, "pilox_mesh_bus_rejected_total", 'reason="replayed"')) === 1);
      assert.equal(JSON.parse(sub.events[0]!.data).n, 2);
      sub.close();
    } finally {
      bin.p.kill("SIGKILL");
      await bin.exited;
    }
  });

  it("a subscriber that stops reading is cut off; 631 messages of 200 KB do not exhaust the heap", async () => {
    const bin = runBinary(cfg, s.path("bin-state"));
    try {
      await bin.ready();
      // A raw client that sends its request, then never reads again.
      const paused = createConnection(sock.socketPath);
      let closed = false;
      paused.on("close", () => (closed = true));
      paused.on("error", () => {});
      paused.write("GET /v1/bus/subscribe?channel=big HTTP/1.1\r\nHost: x\r\n\r\n");
      await new Promise((r) => setTimeout(r, 300));
      paused.pause();
      const body = JSON.stringify({ channel: "big", message: { blob: "x".repeat(200 * 1024) } });
      for (let i = 0; i < 631; i++) {
        const r = await http(sock, "POST", "/v1/bus/publish", body, { "content-type": "application/json" });
        assert.equal(r.status, 202);
      }
      await waitFor(() => bin.log().includes("closing a slow SSE subscriber"), 15_000, "slow subscriber closed");
      paused.resume(); // read what is left, so the close reaches us
      await waitFor(() => closed, 10_000, "connection closed by the server");
      assert.equal((await http({ port }, "GET", "/healthz")).status, 200);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${bin.p.pid}/status`, "utf8"))![1]) * 1024;
      assert.ok(rss < 400 * 1024 * 1024, `RSS ${rss}`);
      bin.p.kill("SIGTERM");
      assert.equal(await bin.exited, 0);
    } finally {
      bin.p.kill("SIGKILL");
    }
  });
});

describe("reload and publish on a running appliance", () => {
  let app: Appliance;
  const sock = { socketPath: s.path("app.sock") };
  const good = () =>
    `[instance]\norigin = "https://mesh-a.example"\n[http]\nlisten = "127.0.0.1:0"\n[api]\nsocket = "${sock.socketPath}"\n[bus.redis]\nurl = "${redis.url}"\n` +
    `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n[[bus.keys]]\nid = "k2"\nsecret_file = "${s.path("k2.key")}"\nprimary = true\n` +
    `[[bus.channels]]\nname = "orders"\ndurable = true\n`;
  before(async () => {
    s.write("app.toml", good());
    app = await startAppliance(s.path("app.toml"), s.path("app-state"));
  });
  after(() => app.stop(200));

  it("an empty or truncated file is refused: the backend, keys, channels and origin stay", async () => {
    writeFileSync(s.path("app.toml"), "");
    const empty = await app.reload();
    assert.equal(empty.ok, false);
    assert.match((empty as { error: string }).error, /bus\.backend would become "embedded", but the running appliance uses "redis"/);
    writeFileSync(s.path("app.toml"), good().slice(0, good().indexOf("[[bus.keys]]\nid = \"k2\"")));
    const truncated = await app.reload();
    assert.equal(truncated.ok, false);
    assert.match((truncated as { error: string }).error, /removes bus keys k2; channels orders\. If that is intended, run: pilox-mesh reload --allow-removals/);
    // Nothing changed: k2 still signs, orders is still durable.
    assert.equal(app.bus.keyRing.primary.id, "k2");
    assert.equal(app.bus.isDurable("orders"), true);
    writeFileSync(s.path("app.toml"), good().replace('[[bus.channels]]\nname = "orders"\ndurable = true\n', ""));
    assert.equal((await app.reload()).ok, false);
    assert.deepEqual(await app.reload({ allowRemovals: true }), { ok: true });
    assert.equal(app.bus.isDurable("orders"), false);
    writeFileSync(s.path("app.toml"), good());
    assert.deepEqual(await app.reload(), { ok: true });
  });

  it("publish: deep JSON is 400, a message over bus.max_message_bytes is 413 naming it (nothing published)", async () => {
    let deep = "1";
    for (let i = 0; i < 200; i++) deep = `[${deep}]`;
    const r1 = await http(sock, "POST", "/v1/bus/publish", `{"channel":"jobs","message":{"a":${deep}}}`, { "content-type": "application/json" });
    assert.equal(r1.status, 400);
    assert.equal(r1.json.error.code, "too_deep");
    const r2 = await http(sock, "POST", "/v1/bus/publish", JSON.stringify({ channel: "orders", message: { blob: "x".repeat(300 * 1024) } }), { "content-type": "application/json" });
    assert.equal(r2.status, 413);
    assert.match(r2.json.error.message, /bus\.max_message_bytes is 262144/);
    assert.equal(await raw.xlen("pilox-mesh:stream:orders"), 0);
  });
});

describe("configuration paths that are files, empty secrets", () => {
  it("conf.d as a file, state_dir as a file, an empty token file: exit 78 naming the file or key", async () => {
    const dir = s.path("cfgs");
    const main = `${dir}/pilox-mesh.toml`;
    (await import("node:fs")).mkdirSync(dir, { recursive: true });
    writeFileSync(main, "");
    writeFileSync(`${dir}/conf.d`, "not a directory");
    const a = await cli(["--config", main, "check-config"]);
    assert.equal(a.code, 78, a.stderr);
    assert.match(a.stderr, /conf\.d: conf\.d must be a directory/);

    const state = s.write("state-file", "x");
    const b = await cli(["--config", s.write("c2.toml", `[node]\nstate_dir = "${state}"\n`), "serve"]);
    assert.equal(b.code, 78, b.stderr);
    assert.match(b.stderr, /node\.state_dir: .*exists and is not a directory/);

    s.write("empty-token", "");
    const c = await cli(["--config", s.write("c3.toml", `[api]\nlisten = "127.0.0.1:0"\ntoken_file = "${s.path("empty-token")}"\n`), "check-config"]);
    assert.equal(c.code, 78, c.stderr);
    assert.match(c.stderr, /api\.token_file: secret file .* is empty/);
  });
});
