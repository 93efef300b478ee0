/**
 * The gateway role in a running appliance, against a stand-in upstream: what it forwards,
 * streaming both ways, the rate limit (forged X-Forwarded-For, shared by two replicas through
 * Redis), the circuit breaker, timeouts, an upstream dying mid-stream, hostile clients.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";
import { readStream, startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const s = scratch();
const SECRET = "gateway-upstream-secret-0123456789";
s.write("gw.secret", SECRET);
s.write("k1.key", SECRET_A);
let up: TestUpstream;
before(async () => {
  up = await startUpstream();
});
after(async () => {
  await up.close();
  s.cleanup();
});

async function gateway(name: string, extra = "", redisUrl?: string): Promise<{ app: Appliance; port: number }> {
  const port = await freePort();
  const cfg = s.write(
    `${name}.toml`,
    `[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path(`${name}.sock`)}"\n` +
      (redisUrl ? `[bus.redis]\nurl = "${redisUrl}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n` : "") +
      `[gateway]\nenabled = true\nupstream_url = "${up.url}"\nupstream_secret_file = "${s.path("gw.secret")}"\nupstream_timeout_seconds = 1\nbreaker_failures = 3\nbreaker_cooldown_seconds = 1\n${extra}`,
  );
  return { app: await startAppliance(cfg, s.path(`${name}-state`)), port };
}

const rpc = (method: string) => JSON.stringify({ jsonrpc: "2.0", method, params: {}, id: 1 });
const call = (port: number, method: string, headers: Record<string, string> = {}) =>
  http({ port }, "POST", "/v1/a2a/jsonrpc", rpc(method), { "content-type": "application/json", ...headers });

describe("gateway: forwarding", { timeout: 60_000 }, () => {
  let g: { app: Appliance; port: number };
  before(async () => {
    g = await gateway("fw", "rate_per_second = 10000\nburst = 10000\n");
  });
  after(() => g.app.stop(200));

  it("forwards the caller's credentials, the secret under both names, trace context with a new span, the derived client address", async () => {
    const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const r = await call(g.port, "tasks/get", { authorization: "Bearer caller-token", "x-pilox-public-a2a-key": "pk_123", traceparent: trace, tracestate: "vendor=1", baggage: "k=v", "x-forwarded-for": "203.0.113.9" });
    assert.equal(r.status, 200, r.body);
    // The guide promises the listener's security headers on every route: /healthz's, on a proxied answer too.
    const health = await http({ port: g.port }, "GET", "/healthz");
    for (const k of ["x-content-type-options", "x-frame-options", "referrer-policy", "strict-transport-security", "cross-origin-opener-policy"]) {
      assert.ok(health.headers[k], k);
      assert.equal(r.headers[k], health.headers[k], k);
    }
    assert.deepEqual(r.json.result, { echo: "tasks/get" });
    assert.equal(r.headers["retry-after"], "3", "upstream headers kept");
    const h = up.last!.headers;
    assert.equal(h["authorization"], "Bearer caller-token");
    assert.equal(h["x-pilox-public-a2a-key"], "pk_123");
    assert.equal(h["x-pilox-gateway-auth"], `Bearer ${SECRET}`);
    assert.equal(h["x-hive-gateway-auth"], `Bearer ${SECRET}`);
    const tp = String(h["traceparent"]).split("-");
    assert.equal(tp[1], "0af7651916cd43dd8448eb211c80319c", "same trace");
    assert.notEqual(tp[2], "b7ad6b7169203331", "new span for our hop");
    assert.equal(h["tracestate"], "vendor=1");
    assert.equal(h["baggage"], "k=v");
    assert.equal(h["x-forwarded-for"], "127.0.0.1", "an untrusted X-Forwarded-For is not believed");
    assert.equal(up.last!.body, rpc("tasks/get"));
    const bad = await http({ port: g.port }, "POST", "/v1/a2a/jsonrpc", "{not json", { "content-type": "application/json" });
    assert.equal(bad.status, 400, "the upstream's own answer to invalid JSON");
  });

  it("streams: each SSE event reaches the client before the upstream sends the next", async () => {
    const r = await readStream(g.port, "/v1/a2a/jsonrpc", rpc("message/stream"));
    assert.equal(r.contentType, "text/event-stream");
    const arrivals = r.events.map((e) => ({ i: e.event.i, lag: e.lagMs }));
    const firstByte = r.firstByteMs;
    assert.deepEqual(arrivals.map((a) => a.i), [0, 1, 2, 3, 4]);
    for (const a of arrivals) assert.ok(a.lag < 80, `event ${a.i} arrived ${a.lag} ms after it was sent`);
    assert.ok(firstByte < 400, `first byte after ${firstByte} ms`);
  });

  it("an upstream killed mid-stream ends the client's stream cleanly", async () => {
    const got = await new Promise<{ data: string; ended: boolean }>((resolve) => {
      const req = request({ host: "127.0.0.1", port: g.port, path: "/v1/a2a/jsonrpc", method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        let data = "";
        res.on("data", (d) => (data += d));
        res.on("end", () => resolve({ data, ended: true }));
        res.on("aborted", () => resolve({ data, ended: false }));
        res.on("error", () => resolve({ data, ended: false }));
      });
      req.end(rpc("die"));
    });
    assert.match(got.data, /"i":0/);
    assert.equal(got.ended, true);
  });

  it("hostile clients: huge headers, invalid requests, 1,000 streams opened and dropped: no 5xx, no slot left taken", async () => {
    const huge = await http({ port: g.port }, "POST", "/v1/a2a/jsonrpc", rpc("x"), { "content-type": "application/json", "x-big": "a".repeat(20_000) }).catch(() => ({ status: 431 }));
    assert.equal(huge.status, 431);
    const tooBig = await http({ port: g.port }, "POST", "/v1/a2a/jsonrpc", "x".repeat(2 * 1024 * 1024), { "content-type": "application/json" });
    assert.equal(tooBig.status, 413);
    await Promise.all(
      Array.from({ length: 1_000 }, () =>
        new Promise<void>((resolve) => {
          const sock = connect(g.port, "127.0.0.1", () => {
            const body = rpc("message/stream");
            sock.write(`POST /v1/a2a/jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          });
          sock.once("data", () => {
            sock.destroy();
            resolve();
          });
          sock.on("error", () => resolve());
          setTimeout(() => (sock.destroy(), resolve()), 5_000).unref();
        }),
      ),
    );
    await waitFor(async () => (await http({ port: g.port }, "GET", "/v1/gateway/health")).json.active === 0, 10_000, "every slot given back");
    const health = await http({ port: g.port }, "GET", "/v1/health");
    assert.equal(health.status, 200);
    assert.equal(health.json.upstream.reachable, true);
    // Still serving (within a breaker cooldown: on a loaded machine the flood can time out an upstream call or three).
    await waitFor(async () => (await call(g.port, "tasks/get")).status === 200, 5_000, "still serving");
  });
});

describe("gateway: protection", { timeout: 60_000 }, () => {
  it("a forged X-Forwarded-For from an untrusted address does not change the rate-limit key", async () => {
    const g = await gateway("rl", "rate_per_second = 1\nburst = 2\n");
    try {
      const codes = [];
      for (const xff of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) codes.push((await call(g.port, "tasks/get", { "x-forwarded-for": xff })).status);
      assert.deepEqual(codes, [200, 200, 429]);
      const m = (await http({ port: g.port }, "GET", "/metrics")).body;
      assert.match(m, /^pilox_mesh_gateway_rate_limited_total\{route="jsonrpc"\} 1$/m);
    } finally {
      await g.app.stop(200);
    }
  });

  it("two replicas on one Redis share one budget", async () => {
    const redis: TestRedis = await startRedis();
    const a = await gateway("ra", "rate_per_second = 1\nburst = 3\n", redis.url);
    const b = await gateway("rb", "rate_per_second = 1\nburst = 3\n", redis.url);
    try {
      await waitFor(() => a.app.bus.backend.isReady() && b.app.bus.backend.isReady());
      const codes = [(await call(a.port, "x")).status, (await call(b.port, "x")).status, (await call(a.port, "x")).status, (await call(b.port, "x")).status];
      assert.deepEqual(codes, [200, 200, 200, 429]);
    } finally {
      await Promise.all([a.app.stop(200), b.app.stop(200)]);
      await redis.stop();
    }
  });

  it("the breaker opens on consecutive failures, refuses fast, half-opens after the cool-down, closes on success; timeouts are 504", async () => {
    const g = await gateway("br", "rate_per_second = 10000\nburst = 10000\n");
    try {
      up.failing = true;
      for (let i = 0; i < 3; i++) assert.equal((await call(g.port, "x")).status, 503);
      const hits = up.hits;
      const fast = await call(g.port, "x");
      assert.equal(fast.status, 503);
      assert.equal(fast.json.error, "origin_unavailable");
      assert.equal(up.hits, hits, "refused without reaching the upstream");
      assert.match((await http({ port: g.port }, "GET", "/metrics")).body, /pilox_mesh_gateway_breaker_state\{upstream="http:\/\/127\.0\.0\.1:\d+"\} 2/);
      up.failing = false;
      await new Promise((r) => setTimeout(r, 1_100));
      assert.equal((await call(g.port, "x")).status, 200, "the half-open trial goes through");
      assert.equal((await call(g.port, "x")).status, 200, "closed again");
      const slow = await call(g.port, "slow");
      assert.equal(slow.status, 504);
      assert.equal(slow.json.error, "upstream_timeout");
    } finally {
      up.failing = false;
      await g.app.stop(200);
    }
  });
});

describe("gateway: TLS to the upstream with a client certificate", { timeout: 60_000 }, () => {
  it("reaches an upstream that requires the certificate; without it the upstream is unavailable", async () => {
    const { makePki } = await import("./helpers/pki.ts");
    const { createServer } = await import("node:https");
    const { readFileSync } = await import("node:fs");
    makePki(s.dir);
    const srv = createServer({ key: readFileSync(s.path("server.key")), cert: readFileSync(s.path("server.crt")), ca: readFileSync(s.path("ca.crt")), requestCert: true, rejectUnauthorized: true }, (q, r) => {
      const cn = (q.socket as import("node:tls").TLSSocket).getPeerCertificate().subject?.CN;
      q.resume();
      q.on("end", () => r.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", result: { client: cn }, id: 1 })));
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(srv.address() as { port: number }).port}`;
    const tls = `upstream_tls_ca_file = "${s.path("ca.crt")}"\n`;
    const withCert = await gateway("mtls", `rate_per_second = 1000\nburst = 1000\n${tls}upstream_tls_cert_file = "${s.path("client.crt")}"\nupstream_tls_key_file = "${s.path("client.key")}"\n`);
    const without = await gateway("notls", `rate_per_second = 1000\nburst = 1000\n${tls}`);
    try {
      // Point both at the TLS upstream (upstream_url is set by the helper to the plain one).
      for (const g of [withCert, without]) {
        const cfg = readFileSync(s.path(`${g === withCert ? "mtls" : "notls"}.toml`), "utf8").replace(/upstream_url = "[^"]*"/, `upstream_url = "${url}"`);
        writeFileSync(s.path(`${g === withCert ? "mtls" : "notls"}.toml`), cfg);
        assert.deepEqual(await g.app.reload(), { ok: true });
      }
      const ok = await call(withCert.port, "tasks/get");
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(ok.json.result, { client: "client" });
      const refused = await call(without.port, "tasks/get");
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error, "origin_unavailable");
    } finally {
      await Promise.all([withCert.app.stop(200), without.app.stop(200)]);
      srv.close();
    }
  });
});
