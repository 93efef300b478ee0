/** The agent API end to end through a running appliance on a real Redis. */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { http, sse, startAppliance } from "./helpers/appliance.ts";
import { startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
const TOKEN = "agent-api-token-0123456789";
let redis: TestRedis;
let app: Appliance;
let sock: { socketPath: string };
let tcp: { port: number };
let pub: { port: number };
const configPath = s.path("pilox-mesh.toml");

before(async () => {
  redis = await startRedis({ aof: true });
  s.write("k1.key", SECRET_A);
  s.write("k2.key", SECRET_B);
  s.write("token", TOKEN);
  s.write(
    "pilox-mesh.toml",
    `[http]
listen = "127.0.0.1:0"
[api]
socket = "${s.path("api.sock")}"
listen = "127.0.0.1:0"
token_file = "${s.path("token")}"
max_body_bytes = 4096
[bus.redis]
url = "${redis.url}"
block_ms = 500
[[bus.keys]]
id = "k1"
secret_file = "${s.path("k1.key")}"
[[bus.channels]]
name = "jobs"
durable = true
`,
  );
  app = await startAppliance(configPath, s.path("state"));
  sock = { socketPath: s.path("api.sock") };
  tcp = { port: app.listeners[1]!.port! };
  pub = { port: app.listeners[2]!.port! };
  await waitFor(() => app.bus.backend.isReady());
});

after(async () => {
  await app?.stop(200);
  await redis.stop();
  s.cleanup();
});

const publish = (body: unknown, target: { socketPath: string } | { port: number } = sock, headers: Record<string, string> = {}) =>
  http(target, "POST", "/v1/bus/publish", typeof body === "string" ? body : JSON.stringify(body), { "content-type": "application/json", ...headers });

describe("publish and subscribe", () => {
  it("publishes through the unix socket and streams verified messages as SSE", async () => {
    const stream = sse(sock, "/v1/bus/subscribe?channel=chat");
    await stream.open;
    assert.equal(stream.status(), 200);
    const r = await publish({ channel: "chat", message: { text: "hi" } });
    assert.equal(r.status, 202);
    assert.match(r.json.eventId, /^[0-9a-f-]{36}$/);
    await waitFor(() => stream.events.length === 1);
    const m = JSON.parse(stream.events[0]!.data);
    assert.equal(m.text, "hi");
    assert.equal(m.meshMeta.eventId, r.json.eventId);
    assert.equal(m.meshExt.kid, "k1");
    assert.equal(stream.events[0]!.id, r.json.eventId);
    stream.close();
  });

  it("the socket has mode 0660", async () => {
    const { statSync } = await import("node:fs");
    assert.equal(statSync(sock.socketPath).mode & 0o777, 0o660);
  });

  it("resumes a durable channel from Last-Event-ID", async () => {
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) ids.push((await publish({ channel: "jobs", message: { n } })).json.id);
    const stream = sse(sock, "/v1/bus/subscribe?channel=jobs", { "last-event-id": ids[1]! });
    await waitFor(() => stream.events.length === 3);
    assert.deepEqual(stream.events.map((e) => JSON.parse(e.data).n), [2, 3, 4]);
    assert.deepEqual(stream.events.map((e) => e.id), ids.slice(2));
    await publish({ channel: "jobs", message: { n: 5 } });
    await waitFor(() => stream.events.length === 4);
    stream.close();
  });

  it("refuses a malformed Last-Event-ID", async () => {
    const r = await http(sock, "GET", "/v1/bus/subscribe?channel=jobs", undefined, { "last-event-id": "yesterday" });
    assert.equal(r.status, 400);
  });
});

describe("input validation", () => {
  const cases: [string, unknown, number, string][] = [
    ["invalid JSON", "{nope", 400, "invalid_json"],
    ["no channel", { message: {} }, 400, "invalid_request"],
    ["bad channel name", { channel: "has space", message: {} }, 400, "invalid_request"],
    ["message not an object", { channel: "chat", message: [1] }, 400, "invalid_request"],
    ["unknown field", { channel: "chat", message: {}, extra: 1 }, 400, "invalid_request"],
    ["Pilox channel schema", { channel: "pilox:agent:status", message: { agentId: "a", status: "flying", timestamp: "2026-01-01T00:00:00.000Z" } }, 422, "invalid_message"],
    ["oversized body", { channel: "chat", message: { pad: "x".repeat(5000) } }, 413, "payload_too_large"],
  ];
  for (const [name, body, status, code] of cases) {
    it(`${name} → ${status} ${code}`, async () => {
      const r = await publish(body);
      assert.equal(r.status, status, r.body);
      assert.equal(r.json.error.code, code);
    });
  }

  it("unknown endpoints answer a JSON 404", async () => {
    const r = await http(sock, "GET", "/v1/nope");
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, "not_found");
  });
});

describe("TCP listener needs the bearer token", () => {
  it("no token, wrong token → 401; right token → 202", async () => {
    assert.equal((await publish({ channel: "chat", message: {} }, tcp)).status, 401);
    assert.equal((await publish({ channel: "chat", message: {} }, tcp, { authorization: "Bearer wrong-token-xxxxxxxx" })).status, 401);
    assert.equal((await publish({ channel: "chat", message: {} }, tcp, { authorization: `Bearer ${TOKEN}` })).status, 202);
  });
});

describe("reload", () => {
  it("a new key via a conf.d drop-in takes effect; a bad config is rejected and the old one stays", async () => {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(s.path("conf.d"), { recursive: true });
    s.write("conf.d/10-rotate.toml", `[[bus.keys]]\nid = "k2"\nsecret_file = "${s.path("k2.key")}"\nprimary = true\n`);
    assert.deepEqual(await app.reload(), { ok: true });
    assert.equal(app.bus.keyRing.primary.id, "k2");
    const stream = sse(sock, "/v1/bus/subscribe?channel=chat");
    await stream.open;
    await publish({ channel: "chat", message: { after: "rotation" } });
    await waitFor(() => stream.events.length === 1);
    assert.equal(JSON.parse(stream.events[0]!.data).meshExt.kid, "k2");
    stream.close();

    writeFileSync(s.path("conf.d/20-broken.toml"), "[bus\n");
    const r = await app.reload();
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /20-broken.toml:1:\d+: TOML syntax/);
    assert.equal(app.bus.keyRing.primary.id, "k2");
    assert.equal((await publish({ channel: "chat", message: {} })).status, 202);
    const { rmSync } = await import("node:fs");
    rmSync(s.path("conf.d"), { recursive: true });
    // Dropping k2 is a removal: refused unless the operator says so.
    assert.equal((await app.reload()).ok, false);
    assert.equal(app.bus.keyRing.primary.id, "k2");
    assert.deepEqual(await app.reload({ allowRemovals: true }), { ok: true });
    assert.equal(app.bus.keyRing.primary.id, "k1");
  });
});

describe("Redis outage", () => {
  it("best-effort publish → 503 backend_unavailable, durable → 202 spooled, /readyz 503 then 200", async () => {
    await redis.kill();
    await waitFor(() => !app.bus.backend.isReady(), 5_000);
    const a = await publish({ channel: "chat", message: {} });
    assert.equal(a.status, 503);
    assert.equal(a.json.error.code, "backend_unavailable");
    const b = await publish({ channel: "jobs", message: { n: "spooled" } });
    assert.equal(b.status, 202);
    assert.equal(b.json.spooled, true);
    const down = await http(pub, "GET", "/readyz");
    assert.equal(down.status, 503);
    assert.equal(down.json.checks.bus.ok, false);
    assert.equal(down.json.spool.messages, 1);
    await redis.restart();
    await waitFor(async () => (await http(pub, "GET", "/readyz")).status === 200, 10_000, "ready again");
    await waitFor(() => app.bus.spoolStats().messages === 0, 10_000, "spool flush");
    const m = await http(pub, "GET", "/metrics");
    assert.match(m.body, /pilox_mesh_bus_published_total\{durable="true"\} \d+/);
    assert.match(m.body, /pilox_mesh_config_reloads_total\{result="rejected"\} 2/);
  });
});
