/**
 * Pilox's own WAN hops against us, with the reference's client (the legacy `nats` package) playing
 * its bridge and its subscriber: what our POST /v1/publish puts on NATS is what the reference's
 * subscriber expects (both body shapes, trace carried), and what the reference's bridge
 * publishes (both shapes) becomes, once, the pilox:system:events message Pilox's ingress
 * publishes. The bridge's statuses and error codes, and envelopes the reference lets through
 * that we refuse (to the dead-letter stream, not a loop).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { connect as legacyConnect, consumerOpts, createInbox, headers as legacyHeaders, StringCodec, type NatsConnection as LegacyConnection } from "nats";
import type { Delivery } from "../src/bus/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { DLQ_HDR } from "../src/wan/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
const TOKEN = "bridge-token-0123456789abcdef";
const sc = StringCodec();
let nats: TestNats;
let redis: TestRedis;
let p: Appliance;
let port: number;
let nc: LegacyConnection;
const events: Delivery[] = [];

function config(acceptUnsigned: boolean): void {
  s.write("bus.key", SECRET_A);
  s.write("publish.token", TOKEN);
  s.write(
    "p.toml",
    `[instance]
origin = "http://127.0.0.1:${port}"
key_file = "${s.path("id.key")}"
[http]
listen = "127.0.0.1:${port}"
[api]
socket = "${s.path("p.sock")}"
[bus.redis]
url = "${redis.url}"
[[bus.keys]]
id = "k1"
secret_file = "${s.path("bus.key")}"
[wan]
nats_urls = ["${nats.url}"]
manage_streams = true
ack_wait_seconds = 3
[wan.pilox]
ingest = true
accept_unsigned = ${acceptUnsigned}
publish_token_file = "${s.path("publish.token")}"
max_envelope_bytes = 4096
publish_rate_per_second = 20
`,
  );
}

const envelope = (n: number, extra: Record<string, unknown> = {}) => ({ v: 1, correlationId: `corr-${n}-xxxxxxxx`, sourceOrigin: "https://a.example", targetOrigin: "https://b.example", payload: { n }, ...extra });
const publish = (body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) => http({ port }, "POST", "/v1/publish", body, { "content-type": "application/json", ...headers });

/**
 * The reference's subscriber, as wire-v1 §6.1 describes it: an ephemeral push consumer with
 * explicit ack (deliver all), unwrapping `wanEnvelope` and turning `meshTrace` back into
 * headers, then POSTing to the ingress (here a small server that records what it got).
 */
async function referenceSubscriber(subject: string) {
  const got: { body: unknown; traceparent: string | undefined; tracestate: string | undefined; natsHeaders: Record<string, string> }[] = [];
  const ingress: Server = createServer((req, res) => {
    let text = "";
    req.on("data", (d) => (text += d));
    req.on("end", () => {
      const last = got[got.length - 1]!;
      last.body = JSON.parse(text);
      last.traceparent = req.headers["traceparent"] as string | undefined;
      last.tracestate = req.headers["tracestate"] as string | undefined;
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ accepted: true }));
    });
  });
  await new Promise<void>((r) => ingress.listen(0, "127.0.0.1", () => r()));
  const ingressPort = (ingress.address() as { port: number }).port;
  const opts = consumerOpts();
  opts.deliverAll();
  opts.ackExplicit();
  opts.ackWait(30_000);
  opts.deliverTo(createInbox());
  const sub = await nc.jetstream().subscribe(subject, opts);
  void (async () => {
    for await (const m of sub) {
      const raw = JSON.parse(sc.decode(m.data)) as Record<string, unknown>;
      const env = raw["wanEnvelope"] ?? raw;
      const trace = raw["meshTrace"] as { traceparent?: string; tracestate?: string } | undefined;
      const natsHeaders: Record<string, string> = {};
      for (const k of m.headers?.keys() ?? []) natsHeaders[k] = m.headers!.get(k);
      got.push({ body: undefined, traceparent: undefined, tracestate: undefined, natsHeaders });
      const h: Record<string, string> = { "content-type": "application/json", authorization: "Bearer ingress" };
      if (trace?.traceparent) h["traceparent"] = trace.traceparent;
      if (trace?.tracestate) h["tracestate"] = trace.tracestate;
      const r = await fetch(`http://127.0.0.1:${ingressPort}/api/mesh/wan/ingress`, { method: "POST", headers: h, body: JSON.stringify(env) });
      if (r.status >= 200 && r.status < 300) m.ack();
      else m.nak();
    }
  })();
  return { got, close: async () => (sub.unsubscribe(), await new Promise((r) => ingress.close(r))) };
}

before(async () => {
  nats = await startNats();
  redis = await startRedis();
  port = await freePort();
  createKeyFile(s.path("id.key"));
  config(false);
  p = await startAppliance(s.path("p.toml"), s.path("state"));
  await p.bus.subscribe("pilox:system:events", (d) => void events.push(d));
  nc = await legacyConnect({ servers: nats.url.replace("nats://", "") });
  await waitFor(async () => (await p.status()).wan?.connected === true, 20_000, "on NATS");
  await waitFor(async () => (await nc.jetstreamManager()).streams.info("PILOX_MESH_WAN").then(() => true, () => false), 20_000, "the reference's stream");
});

after(async () => {
  await nc?.close();
  await p?.stop(200);
  await Promise.all([redis?.stop(), nats?.stop()]);
  s.cleanup();
});

describe("POST /v1/publish, as the reference's bridge", () => {
  it("answers the bridge's statuses and error codes, in its order", async () => {
    assert.deepEqual((await publish(JSON.stringify(envelope(1)), {})).json, { error: "unauthorized" });
    assert.equal((await publish(JSON.stringify(envelope(1)), { authorization: `bearer ${TOKEN}` })).status, 401, "the exact Bearer prefix");
    assert.equal((await publish(JSON.stringify(envelope(1)), { authorization: `Bearer ${TOKEN}x` })).status, 401);
    // 401 comes before 413: an unauthenticated caller learns nothing about the limit.
    assert.equal((await publish("x".repeat(10_000), {})).status, 401);
    const big = await publish(JSON.stringify(envelope(1, { payload: { pad: "x".repeat(5_000) } })));
    assert.deepEqual([big.status, big.json], [413, { error: "payload_too_large" }]);
    assert.deepEqual([(await publish("{nope")).status, (await publish("{nope")).json], [400, { error: "invalid_json" }]);
    const empty = await publish("");
    assert.equal(empty.status, 400, "an empty body counts as {}");
    assert.equal(empty.json.error, "invalid_envelope");
    const bad = await publish(JSON.stringify(envelope(1, { extra: true })));
    assert.equal(bad.json.error, "invalid_envelope");
    assert.equal(typeof bad.json.instancePath, "string");
    assert.equal(typeof bad.json.message, "string");
    // Stricter than the reference: what its ingress refuses, or a non-http(s) origin.
    assert.equal((await publish(JSON.stringify(envelope(1, { targetHandle: "" })))).json.error, "invalid_envelope");
    // An array payload is refused, not rebuilt into {"0":1} (the reference: "payload must be object").
    const arr = await publish(JSON.stringify(envelope(1, { payload: [1] })));
    assert.deepEqual([arr.status, arr.json.error, arr.json.instancePath, arr.json.message], [400, "invalid_envelope", "/payload", "payload must be object"]);
    const js = await publish(JSON.stringify(envelope(1, { sourceOrigin: "javascript:alert(1)" })));
    assert.deepEqual([js.status, js.json.error, js.json.instancePath], [400, "invalid_envelope", "/sourceOrigin"]);
    assert.equal((await http({ port }, "POST", `/v1/publish?${"q".repeat(5_000)}`, "{}", { authorization: `Bearer ${TOKEN}` })).status, 414);
    // Per client address, after authentication (burst twice the rate).
    const statuses = await Promise.all(Array.from({ length: 60 }, () => publish("{nope")));
    assert.ok(statuses.some((r) => r.status === 429 && r.json.error === "rate_limited"), "429 rate_limited past the burst");
    await new Promise((r) => setTimeout(r, 2_100)); // the bucket refills for the tests after
  });

  it("puts on NATS what the reference's subscriber expects: both shapes, trace carried, signed and with Nats-Msg-Id", async () => {
    // Where the stock subscriber listens by default (hive.mesh.wan): no subject set on either side.
    const ref = await referenceSubscriber("hive.mesh.wan");
    try {
      const a = await publish(JSON.stringify(envelope(2)));
      assert.deepEqual([a.status, a.json], [202, { accepted: true, correlationId: "corr-2-xxxxxxxx" }]);
      const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const b = await publish(JSON.stringify(envelope(3)), { authorization: `Bearer ${TOKEN}`, traceparent: tp, tracestate: "vendor=1" });
      assert.equal(b.status, 202);
      const c = await publish(JSON.stringify(envelope(4)), { authorization: `Bearer ${TOKEN}`, traceparent: "garbage" });
      assert.equal(c.status, 202);
      await waitFor(() => ref.got.filter((g) => g.body !== undefined).length >= 3, 10_000, "three envelopes at the reference's ingress");
      const byN = (n: number) => ref.got.find((g) => (g.body as { payload: { n: number } }).payload.n === n)!;
      assert.deepEqual(byN(2).body, envelope(2));
      assert.equal(byN(2).traceparent, undefined);
      assert.deepEqual(byN(3).body, envelope(3));
      assert.equal(byN(3).traceparent, tp);
      assert.equal(byN(3).tracestate, "vendor=1");
      assert.equal(byN(4).traceparent, undefined, "an invalid traceparent is dropped, not forwarded");
      for (const g of ref.got) {
        assert.match(g.natsHeaders["Nats-Msg-Id"] ?? "", /^[0-9a-f]{16}-\d+$/);
        assert.match(g.natsHeaders["Pilox-Mesh-Sig"] ?? "", /^[0-9a-f]{128}$/);
      }
      // Ours are also ingested here: signed by this instance.
      await waitFor(() => events.filter((e) => ["corr-2-xxxxxxxx", "corr-3-xxxxxxxx"].includes((e.message["meshMeta"] as { correlationId?: string }).correlationId ?? "")).length === 2, 10_000, "our own envelopes ingested");
    } finally {
      await ref.close();
    }
  });

  it("answers 503 nats_unavailable with the correlation id while NATS is down", async () => {
    await nats.kill();
    try {
      await waitFor(async () => (await p.status()).wan?.connected === false, 10_000, "disconnected");
      const r = await publish(JSON.stringify(envelope(5)));
      assert.deepEqual([r.status, r.json], [503, { error: "nats_unavailable", correlationId: "corr-5-xxxxxxxx" }]);
    } finally {
      await nats.start();
      await waitFor(async () => (await p.status()).wan?.connected === true, 20_000, "reconnected");
    }
  });
});

describe("ingest of the reference bridge's envelopes", () => {
  it("dead-letters unsigned envelopes unless accept_unsigned", async () => {
    const js = nc.jetstream();
    // (The reference's client may still be reconnecting after the NATS restart above.)
    await waitFor(() => js.publish("pilox.mesh.wan", sc.encode(JSON.stringify(envelope(10))), { msgID: "unsigned-10", timeout: 1_000 }).then(() => true, () => false), 20_000, "the reference's client back on NATS");
    await waitFor(async () => (await deadLetters()).some((d) => d.reason === "unsigned"), 10_000, "an unsigned dead letter");
    assert.equal(events.some((e) => (e.message["meshMeta"] as { correlationId?: string }).correlationId === "corr-10-xxxxxxxx"), false);
  });

  it("turns each envelope, in both shapes, into Pilox's ingress message, once", async () => {
    config(true);
    assert.deepEqual(await p.reload(), { ok: true });
    const js = nc.jetstream();
    const h = legacyHeaders();
    h.set("Nats-Msg-Id", "bridge-11");
    await js.publish("pilox.mesh.wan", sc.encode(JSON.stringify(envelope(11))), { headers: h });
    await js.publish("pilox.mesh.wan", sc.encode(JSON.stringify(envelope(11))), { headers: h }); // the stream drops the repeat
    await js.publish("hive.mesh.wan", sc.encode(JSON.stringify({ wanEnvelope: envelope(12), meshTrace: { v: 1, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } })));
    const of = (n: number) => events.filter((e) => (e.message["meshMeta"] as { correlationId?: string }).correlationId === `corr-${n}-xxxxxxxx`);
    await waitFor(() => of(11).length >= 1 && of(12).length >= 1, 10_000, "both envelopes on pilox:system:events");
    await new Promise((r) => setTimeout(r, 4_000)); // past ack_wait: a redelivery would show
    assert.equal(of(11).length, 1);
    assert.equal(of(12).length, 1);
    const m = of(12)[0]!.message;
    assert.equal(m["type"], "mesh.wan.envelope");
    assert.deepEqual(m["payload"], envelope(12));
    assert.equal(Number.isNaN(Date.parse(m["timestamp"] as string)), false);
    const meta = m["meshMeta"] as Record<string, unknown>;
    assert.equal(meta["producer"], "pilox-core");
    assert.match(meta["eventId"] as string, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("refuses what the reference lets through, to the dead-letter stream, without a loop", async () => {
    const js = nc.jetstream();
    await js.publish("pilox.mesh.wan", sc.encode(JSON.stringify(envelope(13, { targetHandle: "" }))));
    await js.publish("pilox.mesh.wan", sc.encode(JSON.stringify(envelope(14, { sourceOrigin: "mailto:x@example.org" }))));
    await js.publish("pilox.mesh.wan", sc.encode("not json"));
    await waitFor(async () => (await deadLetters()).filter((d) => d.reason === "invalid_envelope" || d.reason === "invalid_json").length >= 3, 10_000, "three dead letters");
    await new Promise((r) => setTimeout(r, 4_000));
    const dl = await deadLetters();
    assert.equal(dl.filter((d) => d.reason === "invalid_envelope").length, 2, "not redelivered");
    assert.equal(dl.filter((d) => d.reason === "invalid_json").length, 1);
    assert.match(dl.find((d) => d.reason === "invalid_envelope")!.detail, /targetHandle|sourceOrigin/);
  });
});

async function deadLetters(): Promise<{ reason: string; detail: string }[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("PILOX_MESH_WAN_DLQ").catch(() => null);
  const out: { reason: string; detail: string }[] = [];
  for (let seq = 1; info && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage("PILOX_MESH_WAN_DLQ", { seq }).catch(() => null);
    if (m) out.push({ reason: m.header?.get(DLQ_HDR.reason) ?? "", detail: m.header?.get(DLQ_HDR.detail) ?? "" });
  }
  return out;
}
