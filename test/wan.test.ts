/**
 * The WAN transport against real nats-server processes (JetStream, file store) and two
 * appliances A and B on their own Redis servers: messages on a durable channel go A→B exactly
 * once, stamped with A's origin, through frames signed by A's instance key; NATS killed twice
 * loses and repeats nothing; poison lands in the dead-letter stream with its reason and is not
 * redelivered; a repeat after the dedupe window is refused by B's sequence memory; A's key
 * rotation costs no refusal; NATS down at A's start spools and then delivers in order.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { Appliance } from "../src/daemon/appliance.ts";
import { peerId } from "../src/federation/index.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { DLQ_HDR, frameSubject, sealFrame } from "../src/wan/index.ts";
import { http, sse, startAppliance, untilOnWan } from "./helpers/appliance.ts";
import { counterSum, counterValue, waitFor } from "./helpers/bus.ts";
import { cli } from "./helpers/cli.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { Deliveries } from "./helpers/deliveries.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";
import { Redis } from "ioredis";

const PREFIX = "pilox-mesh.wan.v1";
const s = scratch();
let nats: TestNats;
let redisA: TestRedis, redisB: TestRedis;
let a: Appliance, b: Appliance;
let portA: number, portB: number;
let keyA: Ed25519Key, keyA2: Ed25519Key, keyB: Ed25519Key, stranger: Ed25519Key;
let nc: NatsConnection, js: JetStreamClient;
const originA = () => `http://127.0.0.1:${portA}`;
const originB = () => `http://127.0.0.1:${portB}`;

/** What B's local handler saw on "a2b". */
const got = new Deliveries();
const { seen, order, origins } = got;
const received = () => got.received();
const assertExactlyOnce = (n: number) => got.assertExactlyOnce(n);

function config(name: "a" | "b", o: { port: number; origin: string; redis: string; secret: string; keyFile: string; peer: string; peerKeys: string[]; accept: string[]; forward: string[]; wan?: string; federation?: string; redisExtra?: string }): string {
  return writeSite({
    dir: s.dir, name, port: o.port, origin: o.origin, keyFile: o.keyFile, secret: o.secret, redis: o.redis, blockMs: 200,
    ...(o.redisExtra ? { redisExtra: o.redisExtra } : {}),
    ...(o.federation ? { federation: o.federation } : {}),
    durable: ["a2b"],
    peer: { origin: o.peer, keys: o.peerKeys, accept: o.accept, forward: o.forward, transport: "wan" },
    wan: { natsUrls: [nats.url], extra: `duplicate_window_seconds = 2\nack_wait_seconds = 5\n${o.wan ?? ""}` },
  });
}

const cfgA = (keyFile = s.path("a-id.key"), extra: { federation?: string; redisExtra?: string } = {}) =>
  config("a", { port: portA, origin: originA(), redis: redisA.url, secret: SECRET_A, keyFile, peer: originB(), peerKeys: [keyB.publicKeyHex], accept: [], forward: ["a2b"], ...extra });
const cfgB = (wan = "") => config("b", { port: portB, origin: originB(), redis: redisB.url, secret: SECRET_B, keyFile: s.path("b-id.key"), peer: originA(), peerKeys: [keyA.publicKeyHex, keyA2.publicKeyHex], accept: ["a2b"], forward: [], wan });

/** The last frame sequence A used for B. */
async function lastSeqOfA(): Promise<number> {
  const st = (await a.status()).wan as { peers: Record<string, { lastSeq: number }> };
  return st.peers[originB()]!.lastSeq;
}

async function publish(n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await a.bus.publish("a2b", { type: "wan.test", payload: { i } });
}

async function startB(): Promise<void> {
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  await b.bus.subscribe("a2b", got.record, { group: "wan-test" });
}

/** Every record in the dead-letter stream, by reason (read with an ordered consumer). */
async function deadLetters(): Promise<{ reason: string; detail: string; entry: string | undefined; body: string }[]> {
  const c = await js.consumers.get("PILOX_MESH_WAN_DLQ");
  const out: { reason: string; detail: string; entry: string | undefined; body: string }[] = [];
  const info = await (await jetstreamManager(nc)).streams.info("PILOX_MESH_WAN_DLQ");
  if (info.state.messages === 0) return out;
  const batch = await c.fetch({ max_messages: info.state.messages, expires: 2_000 });
  for await (const m of batch) {
    out.push({ reason: m.headers?.get(DLQ_HDR.reason) ?? "", detail: m.headers?.get(DLQ_HDR.detail) ?? "", entry: m.headers?.get(DLQ_HDR.entry) || undefined, body: m.string() });
    if (out.length >= info.state.messages) break;
  }
  return out;
}

/** A sealed frame put on NATS as is (on another subject than its own, to test routing). */
async function publishFrame(f: { subject: string; msgId: string; headers: Record<string, string>; body: string }, onSubject = f.subject): Promise<void> {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(f.headers)) h.set(k, v);
  await js.publish(onSubject, f.body, { msgID: f.msgId, headers: h });
}

before(async () => {
  nats = await startNats();
  [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  [portA, portB] = [await freePort(), await freePort()];
  keyA = createKeyFile(s.path("a-id.key"));
  keyA2 = createKeyFile(s.path("a-id2.key"));
  keyB = createKeyFile(s.path("b-id.key"));
  stranger = createKeyFile(s.path("stranger.key"));
  cfgA();
  cfgB();
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  await startB();
  nc = await connect({ servers: nats.url.replace("nats://", "") });
  js = jetstream(nc);
  await untilOnWan("both sites on NATS", a, b);
});

after(async () => {
  await nc?.close();
  await Promise.all([a?.stop(200), b?.stop(200)]);
  await Promise.all([redisA?.stop(), redisB?.stop(), nats?.stop()]);
  s.cleanup();
});

describe("WAN A→B", () => {
  it("delivers 10,000 messages exactly once, stamped with A's origin", async () => {
    // The labelled counters exist from the start (zero), before any traffic.
    const before = await b.metrics.registry.metrics();
    assert.match(before, new RegExp(`^pilox_mesh_wan_delivered_total\\{peer="${originA().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} 0$`, "m"));
    await publish(10_000);
    await waitFor(() => received() >= 10_000, 120_000, "10,000 at B");
    await new Promise((r) => setTimeout(r, 500));
    assertExactlyOnce(10_000);
    assert.deepEqual([...origins], [originA()]);
    assert.equal(await counterSum(b.metrics, "pilox_mesh_wan_delivered_total"), 10_000);
    assert.ok((await counterSum(a.metrics, "pilox_mesh_wan_published_total")) >= 10_000);
    // The route is advertised, and status shows the peer's transport and WAN state.
    const doc = await http({ port: portB }, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(doc.json.wan.siteId, peerId(originB()));
    assert.equal(doc.json.wan.stream, "PILOX_MESH_WAN_V1");
    const metrics = (await http({ port: portB }, "GET", "/metrics")).body;
    for (const name of ["pilox_mesh_wan_delivered_total", "pilox_mesh_wan_consumer_pending", "pilox_mesh_wan_queue_messages"]) assert.match(metrics, new RegExp(`^${name}`, "m"), name);
    assert.match((await http({ port: portA }, "GET", "/metrics")).body, /^pilox_mesh_wan_published_total\{peer="http:\/\/127\.0\.0\.1:\d+"\} 10000$/m);
    const routes = await cli(["discover", originB(), "--public-key", keyB.publicKeyHex]);
    assert.equal(routes.code, 0, routes.stderr);
    assert.equal(JSON.parse(routes.stdout).wan.subjectTemplate, "pilox-mesh.wan.v1.{dst}.{src}");
    const peersOut = await cli(["peers", "--socket", s.path("a.sock")]);
    assert.match(peersOut.stdout, /^wan: connected to /m);
    assert.match(peersOut.stdout, new RegExp(`^${originB().replace(/\./g, "\\.")}\\s+wan\\s`, "m"));
    const statusOut = await cli(["status", "--socket", s.path("b.sock")]);
    assert.match(statusOut.stdout, /^wan:\s+connected to .*stream PILOX_MESH_WAN_V1/m);
    assert.match(statusOut.stdout, /^  inbound:\s+10000 delivered/m);
    const st = await a.status();
    assert.equal(st.federation.peers[0]!.transport, "wan");
    assert.equal((st.federation.peers[0] as { wan?: { sent: number } }).wan?.sent, 10_000);
  });

  it("carries each message's W3C trace context from A's publish request to B's SSE delivery", async () => {
    const stream = sse({ socketPath: s.path("b.sock") }, "/v1/bus/subscribe?channel=a2b");
    await stream.open;
    try {
      const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const pub = (i: number, headers: Record<string, string>) =>
        http({ socketPath: s.path("a.sock") }, "POST", "/v1/bus/publish", JSON.stringify({ channel: "a2b", message: { type: "wan.trace", payload: { i } } }), { "content-type": "application/json", ...headers });
      assert.equal((await pub(1, { traceparent: tp, tracestate: "rojo=00f067aa0ba902b7" })).status, 202);
      assert.equal((await pub(2, { traceparent: "00-nonsense" })).status, 202);
      const of = (i: number) => stream.events.map((e) => JSON.parse(e.data)).find((m) => m.type === "wan.trace" && m.payload.i === i);
      await waitFor(() => of(1) !== undefined && of(2) !== undefined, 10_000, "both at B's SSE");
      assert.equal(of(1).meshExt.traceparent, tp);
      assert.equal(of(1).meshExt.tracestate, "rojo=00f067aa0ba902b7");
      assert.equal(of(1).meshExt.origin, originA());
      assert.equal(of(2).meshExt.traceparent, undefined, "an invalid traceparent is dropped, not forwarded");
    } finally {
      stream.close();
    }
  });

  it("loses and repeats nothing while nats-server is killed -9 twice (20,000 messages)", async () => {
    seen.clear();
    order.length = 0;
    const sending = publish(20_000, 100_000);
    for (let k = 0; k < 2; k++) {
      await waitFor(() => received() > 4_000 + k * 7_000, 120_000, `progress before kill ${k + 1}`);
      await nats.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 1_000));
      await nats.start();
    }
    await sending;
    await waitFor(() => received() >= 20_000, 180_000, "20,000 at B");
    await new Promise((r) => setTimeout(r, 1_000));
    assertExactlyOnce(20_000);
  });

  it("refuses a repeat after the dedupe window by B's sequence memory", async () => {
    const before = received();
    // A sequence A never used (below its first, within B's window): A's own frames keep theirs.
    const seq = (await lastSeqOfA()) - 50_000;
    const frame = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject: frameSubject(PREFIX, originB(), originA()), seq, entries: [{ channel: "a2b", message: { type: "wan.replay", payload: { i: -1 }, meshMeta: { v: 1, producer: "test", eventId: "replay-1" } } }] });
    const send = async () => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(frame.headers)) h.set(k, v);
      return js.publish(frame.subject, frame.body, { msgID: frame.msgId, headers: h });
    };
    assert.equal((await send()).duplicate, false);
    assert.equal((await send()).duplicate, true, "JetStream's window catches the immediate repeat");
    await waitFor(() => received() === before + 1, 10_000, "the frame delivered");
    const dupBefore = await counterValue(b.metrics, "pilox_mesh_wan_duplicates_total", { layer: "receiver" });
    await new Promise((r) => setTimeout(r, 2_500)); // past duplicate_window_seconds = 2
    assert.equal((await send()).duplicate, false, "the stream takes it again");
    await waitFor(async () => (await counterValue(b.metrics, "pilox_mesh_wan_duplicates_total", { layer: "receiver" })) === dupBefore + 1, 10_000, "the receiver's refusal");
    assert.equal(seen.get("replay-1"), 1);
  });

  it("moves each kind of poison to the dead-letter stream with its reason, once", async () => {
    const subject = frameSubject(PREFIX, originB(), originA());
    const entry = (channel: string, i: number) => ({ channel, message: { type: "wan.poison", payload: { i }, meshMeta: { v: 1, producer: "test", eventId: `poison-${channel}-${i}` } } });
    let seq = (await lastSeqOfA()) - 40_000;
    const jsm = await jetstreamManager(nc);
    const consumer = `pilox-mesh-${peerId(originB())}`;
    const redeliveredBefore = (await jsm.consumers.info("PILOX_MESH_WAN_V1", consumer)).num_redelivered;
    const send = publishFrame;
    // Unsigned: no headers at all.
    await js.publish(subject, '{"v":1,"messages":[]}', { msgID: "unsigned-1" });
    // Signed by a key B does not hold for A.
    const forged = sealFrame({ key: stranger, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", 1)] });
    await send({ ...forged, headers: { ...forged.headers, "Pilox-Mesh-Kid": keyA.kid } });
    // A's genuine frame for another site, replayed onto B's subject.
    const elsewhere = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject: frameSubject(PREFIX, "https://other.example", originA()), seq: ++seq, entries: [entry("a2b", 2)] });
    await send(elsewhere, subject);
    // One entry on a channel A may not send to B: the other two are still delivered.
    const mixed = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", 3), entry("secret", 4), entry("a2b", 5)] });
    await send(mixed);
    // An entry that is not a bus message.
    const bad = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [{ channel: "a2b", message: { nope: true } as never }] });
    await send(bad);
    // Larger than B takes now (its bound lowered below what the stream still allows).
    cfgB("max_frame_bytes = 4096");
    assert.deepEqual(await b.reload(), { ok: true });
    const big = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", 7)].map((e) => ({ ...e, message: { ...e.message, pad: "x".repeat(9_000) } })) });
    await send(big);
    await waitFor(async () => (await deadLetters()).some((d) => d.reason === "oversized"), 10_000, "the oversized frame refused");
    cfgB();
    assert.deepEqual(await b.reload(), { ok: true });
    // A genuine frame of A's published on a subject that names another sender.
    const misrouted = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", 6)] });
    await send(misrouted, frameSubject(PREFIX, originB(), "https://third.example"));

    await waitFor(async () => (await deadLetters()).length >= 7, 15_000, "seven dead letters");
    const dl = await deadLetters();
    const reasons = dl.map((d) => d.reason).sort();
    // The forged frame and the replayed one both fail the signature: the subject is signed.
    assert.deepEqual(reasons, ["bad_signature", "bad_signature", "channel_not_allowed", "malformed_entry", "oversized", "unsigned", "wrong_subject"]);
    const notAllowed = dl.find((d) => d.reason === "channel_not_allowed")!;
    assert.equal(notAllowed.entry, "1");
    assert.match(notAllowed.body, /"secret"/);
    await waitFor(() => seen.has("poison-a2b-3") && seen.has("poison-a2b-5"), 10_000, "the valid entries of the mixed frame");
    for (const i of [1, 2, 6, 7]) assert.equal(seen.has(`poison-a2b-${i}`), false);
    // Terminated, not redelivered: nothing pending on B's consumer once ack_wait has passed.
    await new Promise((r) => setTimeout(r, 6_000));
    const ci = await jsm.consumers.info("PILOX_MESH_WAN_V1", consumer);
    assert.equal(ci.num_ack_pending, 0);
    assert.equal(ci.num_redelivered, redeliveredBefore);
    assert.equal((await deadLetters()).length, dl.length, "no second dead letter for the same frame");
  });

  it("dead-letters a frame that keeps failing after wan.max_attempts deliveries (attempts_exhausted)", async () => {
    const marks = `pilox-mesh:wan:marks:${peerId(originB())}`;
    const raw = new Redis(redisB.url);
    const saved = await raw.hgetall(marks);
    cfgB("max_attempts = 2");
    assert.deepEqual(await b.reload(), { ok: true });
    try {
      // B's store answers an error for every frame now (a wrong type where the marks live).
      await raw.del(marks);
      await raw.set(marks, "not a hash");
      const seq = (await lastSeqOfA()) - 30_000;
      const f = sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject: frameSubject(PREFIX, originB(), originA()), seq, entries: [{ channel: "a2b", message: { type: "wan.stuck", payload: { i: 1 }, meshMeta: { v: 1, producer: "test", eventId: "stuck-1" } } }] });
      await publishFrame(f);
      await waitFor(async () => (await deadLetters()).some((d) => d.reason === "attempts_exhausted"), 15_000, "attempts_exhausted");
      assert.equal(seen.has("stuck-1"), false);
    } finally {
      await raw.del(marks);
      if (Object.keys(saved).length) await raw.hset(marks, saved);
      raw.disconnect();
      cfgB();
      assert.deepEqual(await b.reload(), { ok: true });
    }
  });

  it("lists the dead letters and replays one once the rule that refused it changed (pilox-mesh wan dlq)", async () => {
    const sock = ["--socket", s.path("b.sock")];
    // Its own two dead letters: a frame signed by a stranger, and an entry on a channel B does
    // not take from A (beside one it takes).
    const subject = frameSubject(PREFIX, originB(), originA());
    const entry = (channel: string, id: string) => ({ channel, message: { type: "wan.dlq", payload: {}, meshMeta: { v: 1, producer: "test", eventId: id } } });
    let seq = (await lastSeqOfA()) - 20_000;
    const forgedFrame = sealFrame({ key: stranger, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", "dlq-forged")] });
    await publishFrame({ ...forgedFrame, headers: { ...forgedFrame.headers, "Pilox-Mesh-Kid": keyA.kid } });
    await publishFrame(sealFrame({ key: keyA, sender: originA(), senderId: peerId(originA()), subject, seq: ++seq, entries: [entry("a2b", "dlq-ok"), entry("secret", "dlq-secret")] }));
    await waitFor(async () => (await deadLetters()).filter((d) => /"dlq-(forged|secret)"/.test(d.body)).length === 2, 15_000, "both dead letters");
    const list = await cli(["wan", "dlq", "list", "--json", ...sock]);
    assert.equal(list.code, 0, list.stderr);
    const dl = JSON.parse(list.stdout) as { id: number; reason: string; entry: number | null; sender: string | null; body: string | null }[];
    assert.equal(dl.length, (await deadLetters()).length, "every dead letter listed");
    const table = await cli(["wan", "dlq", "list", ...sock]);
    assert.match(table.stdout, /^ID\s+TIME\s+REASON/);
    assert.match(table.stdout, /channel_not_allowed/);
    // Still forged today: refused again, nothing delivered.
    const forged = dl.find((d) => d.reason === "bad_signature" && d.body?.includes('"dlq-forged"'))!;
    const again = await cli(["wan", "dlq", "replay", String(forged.id), ...sock]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /bad_signature/);
    // The entry refused for its channel: allowed now, delivered once.
    const notAllowed = dl.find((d) => d.reason === "channel_not_allowed" && d.body?.includes('"dlq-secret"'))!;
    assert.equal(notAllowed.entry, 1);
    let got = 0;
    const sub = await b.bus.subscribe("secret", () => void got++);
    config("b", { port: portB, origin: originB(), redis: redisB.url, secret: SECRET_B, keyFile: s.path("b-id.key"), peer: originA(), peerKeys: [keyA.publicKeyHex, keyA2.publicKeyHex], accept: ["a2b", "secret"], forward: [] });
    assert.deepEqual(await b.reload(), { ok: true });
    const ok = await cli(["wan", "dlq", "replay", String(notAllowed.id), ...sock]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /delivered 1 message/);
    await waitFor(() => got === 1, 5_000, "the replayed entry");
    const twice = await cli(["wan", "dlq", "replay", String(notAllowed.id), ...sock]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already_delivered/);
    await sub.close();
    cfgB();
    assert.deepEqual(await b.reload({ allowRemovals: true }), { ok: true });
  });

  it("takes A's rotated key (current and next listed at B) without a refusal", async () => {
    const refusedBefore = await counterSum(b.metrics, "pilox_mesh_wan_rejected_total");
    seen.clear();
    await publish(500, 200_000);
    cfgA(s.path("a-id2.key"));
    assert.deepEqual(await a.reload(), { ok: true });
    await publish(500, 300_000);
    await waitFor(() => received() >= 1_000, 60_000, "1,000 across the rotation");
    assertExactlyOnce(1_000);
    assert.equal(await counterSum(b.metrics, "pilox_mesh_wan_rejected_total"), refusedBefore);
  });

  it("B's Redis away: B stops taking frames (no attempt spent), then delivers them exactly once", async () => {
    seen.clear();
    // Two attempts only, so that waiting past max_attempts × ack_wait (2 × 5 s) would have
    // burnt them all, had the deliveries B could not take counted as attempts.
    cfgB("max_attempts = 2");
    assert.deepEqual(await b.reload(), { ok: true });
    const refusedBefore = await counterSum(b.metrics, "pilox_mesh_wan_dlq_total");
    try {
      await redisB.kill("SIGKILL");
      await waitFor(() => !b.bus.backend.isReady(), 10_000, "B sees its Redis away");
      await publish(2_000, 500_000);
      await new Promise((r) => setTimeout(r, 2 * 5_000 + 1_500));
      assert.equal(received(), 0);
      await redisB.restart();
      await waitFor(() => received() >= 2_000, 60_000, "2,000 at B after its Redis returned");
      await new Promise((r) => setTimeout(r, 500));
      assertExactlyOnce(2_000);
      assert.equal(await counterSum(b.metrics, "pilox_mesh_wan_dlq_total"), refusedBefore, "nothing dead-lettered");
    } finally {
      cfgB();
      assert.deepEqual(await b.reload(), { ok: true });
    }
  });

  it("two replicas of B on one Redis share its consumer and its memory: exactly once", async () => {
    seen.clear();
    const text = readFileSync(s.path("b.toml"), "utf8").replace(`listen = "127.0.0.1:${portB}"`, `listen = "127.0.0.1:${await freePort()}"`).replace(s.path("b.sock"), s.path("b2.sock"));
    s.write("b2.toml", text);
    const b2 = await startAppliance(s.path("b2.toml"), s.path("b2-state"));
    try {
      await waitFor(async () => (await b2.status()).wan?.connected === true, 20_000, "the replica on NATS");
      const before1 = (await b.status()).wan!.receiver.delivered;
      await publish(6_000, 600_000);
      await waitFor(() => received() >= 6_000, 120_000, "6,000 at B");
      await new Promise((r) => setTimeout(r, 1_000));
      assertExactlyOnce(6_000);
      const one = (await b.status()).wan!.receiver.delivered - before1;
      const two = (await b2.status()).wan!.receiver.delivered;
      assert.equal(one + two, 6_000);
      assert.ok(one > 0 && two > 0, `both replicas took frames (${one} and ${two})`);
    } finally {
      await b2.stop(200);
    }
  });

  it("spools 5,000 messages while NATS is down at A's start, says so in /readyz, then delivers them in order", async () => {
    await a.stop(200);
    await nats.kill("SIGKILL");
    seen.clear();
    order.length = 0;
    a = await startAppliance(s.path("a.toml"), s.path("a-state"));
    await publish(5_000, 400_000);
    await waitFor(async () => (await a.status()).wan?.queue.messages === 5_000, 20_000, "5,000 queued");
    const ready = await http({ port: portA }, "GET", "/readyz");
    assert.equal(ready.status, 200);
    assert.equal(ready.json.degraded, true);
    assert.equal(ready.json.checks.wan.queue.messages, 5_000);
    assert.equal(typeof ready.json.checks.wan.queue.oldestAgeSeconds, "number");
    assert.equal(received(), 0);
    await nats.start();
    await waitFor(() => received() >= 5_000, 120_000, "5,000 at B");
    await new Promise((r) => setTimeout(r, 500));
    assertExactlyOnce(5_000);
    assert.deepEqual(order, Array.from({ length: 5_000 }, (_, i) => 400_000 + i), "in sequence order");
    const after = await http({ port: portA }, "GET", "/readyz");
    assert.equal(after.json.degraded, false);
  });

  it("a full queue while NATS is away is backpressure: nothing dead-lettered, no attempt spent, frames inside the bound, all delivered after", async () => {
    await a.stop(200);
    await nats.kill("SIGKILL");
    seen.clear();
    order.length = 0;
    // A 64 KiB bound for queue and frames together, and max_attempts = 2: before the fix each
    // entry refused by the full queue burned its attempts and was dead-lettered in Redis.
    cfgA(s.path("a-id.key"), { federation: "queue_max_bytes = 65536", redisExtra: "max_attempts = 2" });
    a = await startAppliance(s.path("a.toml"), s.path("a-state"));
    await publish(2_000, 500_000);
    const r = new Redis(redisA.url);
    try {
      await waitFor(async () => ((await a.status()).wan as { peers: Record<string, { queue: { bytes: number } }> }).peers[originB()]!.queue.bytes > 60_000, 20_000, "A's queue at its bound");
      // Several times longer than max_attempts × backoff.
      await new Promise((res) => setTimeout(res, 4_000));
      assert.equal(await r.xlen("pilox-mesh:stream:a2b:dead"), 0, "nothing dead-lettered for our lack of room");
      const q = ((await a.status()).wan as { peers: Record<string, { queue: { bytes: number } }> }).peers[originB()]!.queue;
      assert.ok(q.bytes <= 65_536 + 4_096, `queue and frames together stay near the bound: ${q.bytes} bytes`);
      await nats.start();
      await waitFor(() => received() >= 2_000, 120_000, "2,000 at B");
      await new Promise((res) => setTimeout(res, 500));
      assertExactlyOnce(2_000);
      assert.deepEqual(order, Array.from({ length: 2_000 }, (_, i) => 500_000 + i), "in sequence order");
      assert.equal(await r.xlen("pilox-mesh:stream:a2b:dead"), 0);
    } finally {
      r.disconnect();
    }
  });
});
