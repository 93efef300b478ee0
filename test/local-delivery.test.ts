/**
 * The embedded bus hands its own best-effort messages to its subscribers without signing them
 * (src/bus/local.ts). Every guarantee a subscriber relies on must hold as on the wire: input
 * limits at publish, replay memory, and verification for anything another bus published.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EmbeddedBackend, EXT_FIELD, MessageTooLargeError, SealError, verifyWire, type Delivery } from "../src/bus/index.ts";
import { frame, sealToWire, sign, wireLength, wireOf } from "../src/bus/envelope/seal.ts";
import { KeyRing } from "../src/bus/keyring.ts";
import { collector, counterValue, makeBus, waitFor } from "./helpers/bus.ts";
import { SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const k2 = { id: "k2", secret: Buffer.from(SECRET_B) };
const policy = { maxBytes: 256 * 1024, maxAgeMs: 300_000, skewMs: 30_000, acceptV1Unextended: true };
const tick = () => new Promise((r) => setTimeout(r, 10));

describe("framing without signing", () => {
  const cases: [string, Record<string, unknown>, Parameters<typeof frame>[3]][] = [
    ["plain", { a: 1 }, {}],
    ["empty body", {}, {}],
    ["v1 form", { type: "x" }, { v1Only: true }],
    ["origin and trace", { é: "ünïcode ☃", n: [1, { b: null }] }, { origin: "https://peer.example", trace: { traceparent: `00-${"a".repeat(32)}-${"b".repeat(16)}-01`, tracestate: "k=v" } }],
    ["given meshMeta", { x: "y", meshMeta: { v: 1, producer: "p", eventId: "e-1", correlationId: "c" } }, {}],
  ];
  for (const [name, msg, opts] of cases) {
    it(`wireLength is the sealed string's length, known before the MACs (${name})`, () => {
      const f = frame("jobs", msg, k1.id, opts);
      const wire = wireOf(sign(f, k1));
      assert.equal(wireLength(f), wire.length);
      const v = verifyWire("jobs", wire, new KeyRing([k1]), { ...policy, acceptV1Unextended: true });
      assert.equal(v.ok, true, JSON.stringify(v));
      // The same bytes as sealing in one step (same event id and time given).
      const meshMeta = f.meshMeta;
      assert.equal(sealToWire("jobs", { ...msg, meshMeta }, k1, { ...opts, now: f.ext?.ts ?? Date.now() }).wire.length, wire.length);
    });
  }
});

describe("in-process delivery", () => {
  it("a subscriber gets the body unsigned; the wire form, asked for, is a sealed message that verifies", async () => {
    const { bus } = makeBus({ keys: [k1] });
    await bus.start();
    const c = collector();
    await bus.subscribe("jobs", c.handler);
    const { eventId } = await bus.publish("jobs", { task: "index", n: 1 });
    await waitFor(() => c.got.length === 1);
    const d = c.got[0]!;
    assert.equal(d.eventId, eventId);
    assert.deepEqual(d.body, { task: "index", n: 1, meshMeta: { v: 1, producer: "test", eventId } });
    assert.equal(d.kid, "k1");
    const v = verifyWire("jobs", d.text(), new KeyRing([k1]), policy);
    assert.ok(v.ok);
    assert.deepEqual(d.message, JSON.parse(d.text()));
    assert.equal(d.ext?.kid, "k1");
    assert.equal(typeof d.ext?.sig, "string");
    await bus.close();
  });

  it("re-publishing a received message leaves its old seals out of the body", async () => {
    const { bus } = makeBus({ keys: [k1] });
    await bus.start();
    const c = collector();
    await bus.subscribe("b", c.handler);
    const sealed = JSON.parse(sealToWire("a", { x: 1 }, k1).wire) as Record<string, unknown>;
    await bus.publish("b", sealed);
    await waitFor(() => c.got.length === 1);
    assert.deepEqual(Object.keys(c.got[0]!.body).sort(), ["meshMeta", "x"]);
    assert.ok(verifyWire("b", c.got[0]!.text(), new KeyRing([k1]), policy).ok);
    await bus.close();
  });

  it("an event id published twice is refused as a replay, as on the wire", async () => {
    const { bus, metrics } = makeBus({ keys: [k1] });
    await bus.start();
    const c = collector();
    await bus.subscribe("jobs", c.handler);
    const meshMeta = { v: 1, producer: "p", eventId: "same-id" };
    await bus.publish("jobs", { a: 1, meshMeta });
    await bus.publish("jobs", { a: 2, meshMeta });
    await tick();
    assert.equal(c.got.length, 1);
    assert.equal(await counterValue(metrics, "pilox_mesh_bus_rejected_total", { reason: "replayed" }), 1);
    await bus.close();
  });

  it("input limits hold at publish: too large, too deep, not an object", async () => {
    const { bus } = makeBus({ keys: [k1] });
    await bus.start();
    const c = collector();
    await bus.subscribe("jobs", c.handler);
    await assert.rejects(bus.publish("jobs", { big: "x".repeat(256 * 1024) }), MessageTooLargeError);
    // Just under the bound in characters, over it in bytes (3-byte UTF-8 characters).
    await assert.rejects(bus.publish("jobs", { big: "☃".repeat(90_000) }), MessageTooLargeError);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = { d: deep };
    await assert.rejects(bus.publish("jobs", { deep }), SealError);
    await assert.rejects(bus.publish("jobs", [] as unknown as Record<string, unknown>), SealError);
    await tick();
    assert.equal(c.got.length, 0);
    await bus.close();
  });

  it("another bus on the same backend verifies: a ring without the key refuses, one with it accepts", async () => {
    const backend = new EmbeddedBackend();
    const a = makeBus({ keys: [k1], backend });
    const stranger = makeBus({ keys: [k2], backend });
    const friend = makeBus({ keys: [k1, k2], primary: "k2", backend });
    for (const b of [a, stranger, friend]) await b.bus.start();
    const got: Record<string, Delivery[]> = { stranger: [], friend: [] };
    await stranger.bus.subscribe("jobs", (d) => void got["stranger"]!.push(d));
    await friend.bus.subscribe("jobs", (d) => void got["friend"]!.push(d));
    await a.bus.publish("jobs", { hello: 1 });
    await waitFor(() => got["friend"]!.length === 1);
    await tick();
    assert.equal(got["stranger"]!.length, 0);
    assert.equal(await counterValue(stranger.metrics, "pilox_mesh_bus_rejected_total", { reason: "unknown_key" }), 1);
    // The friend verified the sealed form: its delivery carries the wire object with meshSig.
    assert.equal(typeof got["friend"]![0]!.message["meshSig"], "string");
    assert.equal(got["friend"]![0]!.message[EXT_FIELD] !== undefined, true);
    for (const b of [a, stranger, friend]) await b.bus.close();
  });

  it("a message is signed once however many subscribers ask for its wire form", async () => {
    const { bus } = makeBus({ keys: [k1] });
    await bus.start();
    const texts: string[] = [];
    for (let i = 0; i < 3; i++) await bus.subscribe("jobs", (d) => void texts.push(d.text()));
    await bus.publish("jobs", { a: 1 });
    await waitFor(() => texts.length === 3);
    assert.equal(new Set(texts).size, 1);
    await bus.close();
  });
});
