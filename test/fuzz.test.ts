/**
 * Random and adversarial JSON through every inbound path: bus pub/sub and streams (as an
 * outsider who can reach Redis), the agent API, the federation relay (as a trusted peer whose
 * tokens are valid), and the configuration files. Whatever arrives: no crash, no 5xx, and
 * every refusal is counted by reason (delivered + refused = sent).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { after, before, describe, it } from "node:test";
import { sealToWire, type MeshBus } from "../src/bus/index.ts";
import { ConfigError, loadConfig } from "../src/config/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { mintToken } from "../src/federation/index.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { closeRedisSuite, collector, counterSum, makeBus, redisWithClient, startReady, waitFor } from "./helpers/bus.ts";
import { corpus, rng } from "./helpers/fuzz.ts";
import { freePort, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const N = 400;
const s = scratch();
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
let redis: TestRedis;
let raw: Redis;
const buses: MeshBus[] = [];

before(async () => ({ redis, raw } = await redisWithClient()));
after(async () => {
  await closeRedisSuite(buses, raw, redis);
  s.cleanup();
});

/** Valid messages to break: ours, with prototype keys the MAC covers. */
const valid = (channel: string) =>
  [0, 1, 2].map((i) => sealToWire(channel, JSON.parse(`{"i":${i},"__proto__":{"p":1},"constructor":"c","prototype":[1]}`), k1).wire);

describe("fuzz: bus", { timeout: 120_000 }, () => {
  it("pub/sub: every hostile text is refused and counted; genuine messages with prototype keys arrive intact", async () => {
    const b = makeBus({ url: redis.url, keys: [k1] });
    buses.push(b.bus);
    await startReady(b.bus);
    const c = collector();
    await b.bus.subscribe("fz", c.handler);
    const texts = corpus(1, N, valid("fz"));
    for (const t of texts) await raw.publish("fz", t);
    const genuine = valid("fz");
    for (const t of genuine) await raw.publish("fz", t);
    await waitFor(async () => c.got.length + (await counterSum(b.metrics, "pilox_mesh_bus_rejected_total")) === N + genuine.length, 30_000, "all accounted for");
    const ours = c.got.filter((d) => Object.hasOwn(d.message, "__proto__"));
    assert.ok(ours.length >= genuine.length);
    for (const d of ours) {
      for (const k of ["__proto__", "constructor", "prototype"]) assert.ok(Object.hasOwn(d.message, k), k);
      assert.deepEqual(d.message["__proto__"], { p: 1 });
      assert.equal(Object.getPrototypeOf(d.message), Object.prototype);
    }
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  });

  it("streams: every hostile entry is dead-lettered with its reason or acknowledged as a duplicate; nothing waits", async () => {
    const b = makeBus({ url: redis.url, keys: [k1], channels: { "fz-d": { durable: true } }, group: "fz-g" });
    buses.push(b.bus);
    await startReady(b.bus);
    const c = collector();
    await b.bus.subscribe("fz-d", c.handler);
    const texts = corpus(2, N, valid("fz-d"));
    for (const t of texts) await raw.xadd("pilox-mesh:stream:fz-d", "*", "m", t);
    const accounted = async () => c.got.length + (await raw.xlen("pilox-mesh:stream:fz-d:dead")) + (await counterSum(b.metrics, "pilox_mesh_bus_durable_duplicates_total"));
    await waitFor(async () => (await accounted()) === N, 60_000, "all accounted for").catch(async (err) => {
      throw new Error(`${(err as Error).message}: ${c.got.length} delivered, ${await raw.xlen("pilox-mesh:stream:fz-d:dead")} dead, ${await counterSum(b.metrics, "pilox_mesh_bus_durable_duplicates_total")} duplicates of ${N}; stream ${await raw.xlen("pilox-mesh:stream:fz-d")}, pending ${JSON.stringify(await raw.xpending("pilox-mesh:stream:fz-d", "fz-g"))}`);
    });
    const dead = await raw.xrange("pilox-mesh:stream:fz-d:dead", "-", "+");
    const reasons = new Set(dead.map(([, f]) => f[f.indexOf("reason") + 1]));
    for (const r of reasons) assert.match(String(r), /^(oversized|malformed|too_deep|invalid_schema|unsigned|unextended|unknown_key|forged|wrong_channel|stale|clock_skew)$/);
    assert.equal(await counterSum(b.metrics, "pilox_mesh_bus_rejected_total"), dead.length + (await counterSum(b.metrics, "pilox_mesh_bus_durable_duplicates_total")));
    const pending = (await raw.xpending("pilox-mesh:stream:fz-d", "fz-g")) as [number];
    assert.equal(pending[0], 0);
  });
});

describe("fuzz: agent API and federation relay", { timeout: 180_000 }, () => {
  let app: Appliance;
  let port: number;
  const sock = { socketPath: s.path("fz.sock") };
  const peer = "https://fuzz-peer.example";
  let key: ReturnType<typeof createKeyFile>;
  before(async () => {
    port = await freePort();
    key = createKeyFile(s.path("peer.key"));
    s.write("k1.key", SECRET_A);
    s.write(
      "fz.toml",
      `[instance]\norigin = "http://127.0.0.1:${port}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${sock.socketPath}"\n[bus.redis]\nurl = "${redis.url}"\n` +
        `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("k1.key")}"\n[federation]\nper_ip_rate = 100000\n` +
        `[[federation.peers]]\norigin = "${peer}"\npublic_keys = ["${key.publicKeyHex}"]\naccept_channels = ["fz", "pilox:system:events"]\nrate_per_second = 100000\n`,
    );
    app = await startAppliance(s.path("fz.toml"), s.path("fz-state"));
    await waitFor(() => app.bus.backend.isReady());
  });
  after(() => app.stop(200));

  it("POST /v1/bus/publish: no 5xx for any body", async () => {
    const texts = corpus(3, N, [JSON.stringify({ channel: "fz", message: { a: 1 } })]);
    const wrapped = corpus(4, N, []).map((t) => `{"channel":"fz","message":${t}}`);
    const statuses = new Map<number, number>();
    for (const t of [...texts, ...wrapped]) {
      const r = await http(sock, "POST", "/v1/bus/publish", t, { "content-type": "application/json" });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.ok(r.status < 500, `${r.status} for ${t.slice(0, 200)}: ${r.body}`);
    }
    assert.ok((statuses.get(202) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
  });

  it("POST /v1/federation/relay with valid tokens: no 5xx, and every request is counted as accepted or refused by reason", async () => {
    const before = await counterSum(app.metrics, "pilox_mesh_federation_requests_total", (l) => l["direction"] === "inbound");
    const r0 = rng(5);
    const bodies = [
      ...corpus(6, N / 2, []),
      ...corpus(7, N / 2, []).map((t) => `{"messages":[{"channel":"fz","message":{"meshMeta":{"v":1,"producer":"p","eventId":"e-${Math.floor(r0() * 1e9)}"},"x":${t}}}]}`),
    ];
    for (const body of bodies) {
      const t = await mintToken({ key, iss: peer, aud: `http://127.0.0.1:${port}`, ttlSeconds: 60, body });
      const r = await http({ port }, "POST", "/v1/federation/relay", body, { "content-type": "application/json", "x-pilox-federation-jwt": t });
      assert.ok(r.status < 500, `${r.status} for ${body.slice(0, 200)}: ${r.body}`);
    }
    // Each request adds one accepted or refused count, plus one per refused message in a batch.
    const after = await counterSum(app.metrics, "pilox_mesh_federation_requests_total", (l) => l["direction"] === "inbound");
    assert.ok(after - before >= bodies.length, `${after - before} counted for ${bodies.length} requests`);
  });
});

describe("fuzz: registry API", { timeout: 120_000 }, () => {
  it("POST /v1/records, /validate and DELETE with any body: no 5xx", async () => {
    const port = await freePort();
    s.write("reg-token", "registry-write-token-0123456789");
    s.write("reg.toml", `[instance]\norigin = "http://127.0.0.1:${port}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("reg.sock")}"\n[registry]\nenabled = true\nwrite_token_file = "${s.path("reg-token")}"\nsync_interval_seconds = 3600\n`);
    const app = await startAppliance(s.path("reg.toml"), s.path("reg-state"));
    try {
      const auth = { authorization: "Bearer registry-write-token-0123456789", "content-type": "application/json" };
      const bodies = [...corpus(9, N / 2, []), ...corpus(10, N / 2, []).map((t) => `{"schema":"pilox-registry-record-v1","handle":"urn:fuzz:handle-1","updatedAt":"2026-01-01T00:00:00Z","agentCardUrl":"https://a.example/c","proof":${t}}`)];
      for (const body of bodies) {
        for (const [method, path] of [["POST", "/v1/records"], ["POST", "/v1/records/validate"], ["DELETE", "/v1/records/urn%3Afuzz%3Ahandle-1"]] as const) {
          const r = await http({ port }, method, path, body, { ...auth, "content-length": String(Buffer.byteLength(body)) });
          assert.ok(r.status < 500, `${method} ${path}: ${r.status} for ${body.slice(0, 200)}: ${r.body}`);
        }
      }
      assert.equal((await http({ port }, "GET", "/v1/health")).status, 200);
    } finally {
      await app.stop(200);
    }
  });
});

describe("fuzz: configuration", () => {
  it("random and hostile TOML gives a configuration or a ConfigError, never anything else", () => {
    const r = rng(8);
    const pieces = [
      "[node]", "[bus]", "[[bus.keys]]", "[bus.redis]", "[__proto__]", "[constructor]", "[bus.__proto__]", "__proto__ = 1", "constructor = 1",
      "prototype = {}", 'name = "x"', "x = 1e400", "max_message_bytes = 99999999999999999999", 'url = "redis://"', "a = " + "[".repeat(2_000) + "]".repeat(2_000),
      "b = " + "{c=".repeat(500) + "1" + "}".repeat(500), 'k = "' + "v".repeat(100_000) + '"', "dup = 1", "dup = 2", "[[federation.peers]]",
      'origin = "javascript:alert(1)"', "public_keys = []", "= =", '"\\ud800" = 1', "level = \"debug\"", "[log]", "channels = [{name = \"a\", durable = true}]",
    ];
    const file = s.path("fuzz.toml");
    for (let i = 0; i < N; i++) {
      const n = 1 + Math.floor(r() * 8);
      writeFileSync(file, Array.from({ length: n }, () => pieces[Math.floor(r() * pieces.length)]).join("\n"));
      try {
        loadConfig({ path: file, stateDir: s.path("cfg-state") });
      } catch (err) {
        assert.ok(err instanceof ConfigError, `${(err as Error).stack}`);
      }
    }
    assert.equal(({} as Record<string, unknown>)["x"], undefined, "Object.prototype untouched");
  });
});
