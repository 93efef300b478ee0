import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { vectors } from "../../../spec/vectors.ts";
import { KeyRing } from "../keyring.ts";
import { sealMessage, sealToWire } from "./seal.ts";
import { coreOf, macV1, signedStringV1 } from "./v1.ts";
import { textsFromRaw, verifyWire, type VerifyPolicy } from "./verify.ts";
import { canonicalize } from "../../canon/index.ts";
import { canonicalExt } from "./ext.ts";

const bus = vectors.bus;
const secret = Buffer.from(bus.secret);
const ring = new KeyRing([{ id: "spec", secret }]);
const policy: VerifyPolicy = { maxBytes: 65536, maxAgeMs: 300_000, skewMs: 30_000, acceptV1Unextended: true };
const other = Buffer.from("another-bus-secret-0123456789abcdefgh");

describe("v1 envelope against the spec vectors", () => {
  it("builds the canonical signed string byte for byte", () => {
    assert.equal(signedStringV1(bus.channel, bus.core, bus.meshMeta), bus.canonicalSigned);
  });

  it("computes the spec meshSig", () => {
    assert.equal(macV1(secret, bus.channel, bus.core, bus.meshMeta), bus.meshSig);
  });

  it("seals to the exact wire bytes in v1 form", () => {
    const sealed = sealMessage(bus.channel, { ...bus.core, meshMeta: bus.meshMeta }, { id: "spec", secret }, { v1Only: true });
    assert.equal(JSON.stringify(sealed), JSON.stringify(bus.wire));
  });

  it("verifies the spec wire message", () => {
    const r = verifyWire(bus.channel, JSON.stringify(bus.wire), ring, policy);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.eventId, bus.meshMeta.eventId);
  });

  it("accepts the hive alias of the channel when signed for it", () => {
    const sealed = sealMessage("hive:system:events", { ...bus.core, meshMeta: bus.meshMeta }, { id: "spec", secret }, { v1Only: true });
    const r = verifyWire("hive:system:events", JSON.stringify(sealed), ring, policy);
    assert.ok(r.ok);
    assert.equal(r.value.channel, "pilox:system:events");
  });

  it("accepts upper-case hex in meshSig", () => {
    const r = verifyWire(bus.channel, JSON.stringify({ ...bus.wire, meshSig: bus.meshSig.toUpperCase() }), ring, policy);
    assert.ok(r.ok);
  });

  it("refuses unextended messages when accept_v1_unextended is off", () => {
    const r = verifyWire(bus.channel, JSON.stringify(bus.wire), ring, { ...policy, acceptV1Unextended: false });
    assert.deepEqual(r.ok ? "ok" : r.reason, "unextended");
  });
});

describe("tampering", () => {
  const fields: [string, (m: any) => void][] = [
    ["type", (m) => (m.type = "agent.deleted")],
    ["payload value", (m) => (m.payload.name = "Evil")],
    ["payload new key", (m) => (m.payload.extra = 1)],
    ["timestamp", (m) => (m.timestamp = "2026-02-02T10:00:01.000Z")],
    ["meshMeta.eventId", (m) => (m.meshMeta.eventId = "00000000-0000-4000-8000-000000000000")],
    ["meshMeta.producer", (m) => (m.meshMeta.producer = "other")],
    ["meshMeta.correlationId", (m) => (m.meshMeta.correlationId = "req-43")],
    ["meshMeta removed correlationId", (m) => delete m.meshMeta.correlationId],
    ["meshSig flipped", (m) => (m.meshSig = (m.meshSig[0] === "a" ? "b" : "a") + m.meshSig.slice(1))],
    ["meshSig truncated", (m) => (m.meshSig = m.meshSig.slice(0, 62))],
  ];
  for (const [name, mutate] of fields) {
    it(`v1: ${name} changed → forged`, () => {
      const m = structuredClone(bus.wire);
      mutate(m);
      const r = verifyWire(bus.channel, JSON.stringify(m), ring, policy);
      assert.equal(r.ok ? "ok" : r.reason, "forged");
    });
  }

  const sealedExt = () => sealMessage("jobs", { task: "x", n: 1 }, { id: "k1", secret }, {});
  const ring1 = new KeyRing([{ id: "k1", secret }]);
  const extCases: [string, (m: any) => void, string][] = [
    ["body", (m) => (m.n = 2), "forged"],
    ["ext.ts", (m) => (m.meshExt.ts -= 1), "forged"],
    ["ext.kid to unknown", (m) => (m.meshExt.kid = "k9"), "unknown_key"],
    ["ext.ch", (m) => (m.meshExt.ch = "other"), "forged"],
    ["ext.sig", (m) => (m.meshExt.sig = "0".repeat(64)), "forged"],
    ["ext.sig in upper case (ours is lower-case only)", (m) => (m.meshExt.sig = m.meshExt.sig.toUpperCase()), "forged"],
    ["ext.origin added", (m) => (m.meshExt.origin = "https://x.example"), "forged"],
    ["ext not an object", (m) => (m.meshExt = "x"), "malformed"],
    ["ext.ts not a number", (m) => (m.meshExt.ts = "1"), "malformed"],
    ["meshSig removed", (m) => delete m.meshSig, "unsigned"],
    ["meshSig changed", (m) => (m.meshSig = (m.meshSig[0] === "a" ? "b" : "a") + m.meshSig.slice(1)), "forged"],
    ["meshSig copied into ext.sig", (m) => (m.meshExt.sig = m.meshSig), "forged"],
    ["meshMeta.eventId", (m) => (m.meshMeta.eventId = "00000000-0000-4000-8000-000000000000"), "forged"],
    ["meshMeta removed", (m) => delete m.meshMeta, "invalid_schema"],
  ];
  for (const [name, mutate, reason] of extCases) {
    it(`extended: ${name} → ${reason}`, () => {
      const m = sealedExt();
      mutate(m);
      const r = verifyWire("jobs", JSON.stringify(m), ring1, policy);
      assert.equal(r.ok ? "ok" : r.reason, reason);
    });
  }

  it("extended: untouched verifies", () => {
    const r = verifyWire("jobs", JSON.stringify(sealedExt()), ring1, policy);
    assert.ok(r.ok);
    assert.equal(r.value.kid, "k1");
  });
});

describe("generated meshMeta", () => {
  it("is what a stock verifier canonicalises, whatever the producer name", () => {
    for (const producer of ["bench", 'we"ird\\ é 😀', "p".repeat(128)]) {
      const m = JSON.parse(sealToWire("jobs", { b: 1, a: 2 }, { id: "k1", secret }, { producer }).wire);
      assert.equal(m.meshMeta.producer, producer);
      assert.equal(m.meshSig, macV1(secret, "jobs", coreOf(m), m.meshMeta));
    }
  });
  it("refuses a producer name longer than 128 characters", () => {
    assert.throws(() => sealToWire("jobs", {}, { id: "k1", secret }, { producer: "p".repeat(129) }), /producer/);
  });
});

describe("raw text the MAC fast path must not be fooled by", () => {
  const k1 = { id: "k1", secret };
  const r1 = new KeyRing([k1]);
  const wire = () => sealToWire("jobs", { task: "x", n: 1 }, k1).wire;
  const reason = (raw: string) => {
    const r = verifyWire("jobs", raw, r1, policy);
    return r.ok ? "ok" : r.reason;
  };

  it("our own layout is read without canonicalising again (the fast path is taken)", () => {
    for (const w of [wire(), sealToWire("jobs", {}, k1).wire, sealToWire("jobs", { a: 1 }, k1, { origin: "https://a.example" }).wire]) {
      const m = JSON.parse(w);
      const t = textsFromRaw(w, m.meshSig, m.meshExt);
      assert.ok(t, w);
      assert.equal(t.core, canonicalize(coreOf(m)));
      assert.equal(t.meta, canonicalize(m.meshMeta));
      const { sig: _sig, ...unsigned } = m.meshExt;
      assert.equal(t.ext, canonicalize(unsigned));
    }
    const v1 = sealToWire("jobs", { a: 1 }, k1, { v1Only: true }).wire;
    const m1 = JSON.parse(v1);
    // The v1 form gains a timestamp on operator channels (receivers bound its replay by it).
    assert.match(m1.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(textsFromRaw(v1, m1.meshSig, undefined), { core: `{"a":1,"timestamp":${JSON.stringify(m1.timestamp)}}`, meta: canonicalize(m1.meshMeta), ext: "" });
  });

  it("our own layout verifies; so do reordered keys and added whitespace", () => {
    const w = wire();
    assert.equal(reason(w), "ok");
    const m = JSON.parse(w);
    const reordered = { meshExt: { sig: m.meshExt.sig, v: 1, ts: m.meshExt.ts, kid: "k1", ch: "jobs" }, n: 1, meshSig: m.meshSig, meshMeta: m.meshMeta, task: "x" };
    assert.equal(reason(JSON.stringify(reordered)), "ok");
    assert.equal(reason(JSON.stringify(m, null, 2)), "ok");
  });

  it("a meshMeta override smuggled into the meshSig region is refused", () => {
    const w = wire();
    const m = JSON.parse(w);
    const evil = w.replace(`"meshSig":"${m.meshSig}"`, `"meshSig":"${m.meshSig}","meshMeta":{"v":1,"producer":"evil","eventId":"e-1"},"meshSig":"${m.meshSig}"`);
    assert.notEqual(evil, w);
    assert.equal(JSON.parse(evil).meshMeta.producer, "evil");
    assert.equal(reason(evil), "forged");
  });

  it("a key repeated after the signed fields is refused", () => {
    const w = wire();
    assert.equal(reason(w.slice(0, -1) + ',"n":2}'), "forged");
    assert.equal(reason(w.slice(0, -1) + ',"meshMeta":{"v":1,"producer":"evil","eventId":"e-2"}}'), "forged");
  });

  it("a send time overridden inside meshExt is refused", () => {
    const w = wire();
    const m = JSON.parse(w);
    const evil = w.replace(`"sig":"${m.meshExt.sig}"}`, `"sig":"${m.meshExt.sig}","ts":${m.meshExt.ts + 60_000}}`);
    assert.equal(JSON.parse(evil).meshExt.ts, m.meshExt.ts + 60_000);
    assert.equal(reason(evil), "forged");
  });

  it("an unknown field in meshExt is malformed (it would be unauthenticated)", () => {
    const w = wire();
    const m = JSON.parse(w);
    assert.equal(reason(w.replace(`"sig":"${m.meshExt.sig}"}`, `"sig":"${m.meshExt.sig}","x":1}`)), "malformed");
  });

  it("the body moved into meshMeta's place is refused", () => {
    const w = wire();
    const m = JSON.parse(w);
    const evil = JSON.stringify({ task: "x", n: 1, meshMeta: { ...m.meshMeta, n: 2 }, meshSig: m.meshSig, meshExt: m.meshExt });
    assert.equal(reason(evil), "forged");
  });
});

describe("channel binding, keys, freshness", () => {
  const k1 = { id: "k1", secret };
  const k2 = { id: "k2", secret: other };

  it("a message moved to another channel is wrong_channel (extended) or forged (v1)", () => {
    const ext = sealMessage("jobs", { a: 1 }, k1);
    assert.equal((verifyWire("other", JSON.stringify(ext), new KeyRing([k1]), policy) as any).reason, "wrong_channel");
    const v1 = sealMessage("jobs", { a: 1 }, k1, { v1Only: true });
    assert.equal((verifyWire("other", JSON.stringify(v1), new KeyRing([k1]), policy) as any).reason, "forged");
  });

  it("a wrong key is forged (v1) or unknown_key (extended)", () => {
    const v1 = sealMessage("jobs", { a: 1 }, k2, { v1Only: true });
    assert.equal((verifyWire("jobs", JSON.stringify(v1), new KeyRing([k1]), policy) as any).reason, "forged");
    const ext = sealMessage("jobs", { a: 1 }, k2);
    assert.equal((verifyWire("jobs", JSON.stringify(ext), new KeyRing([k1]), policy) as any).reason, "unknown_key");
  });

  it("a known kid with another key's MAC is forged", () => {
    const m = sealMessage("jobs", { a: 1 }, { id: "k1", secret: other });
    assert.equal((verifyWire("jobs", JSON.stringify(m), new KeyRing([k1]), policy) as any).reason, "forged");
  });

  it("rotation: both keys accepted while listed, the old one refused once removed", () => {
    const both = new KeyRing([k1, k2], "k2");
    assert.equal(both.primary.id, "k2");
    const old = sealMessage("jobs", { a: 1 }, k1);
    const cur = sealMessage("jobs", { a: 2 }, both.primary);
    assert.ok(verifyWire("jobs", JSON.stringify(old), both, policy).ok);
    assert.ok(verifyWire("jobs", JSON.stringify(cur), both, policy).ok);
    const onlyNew = new KeyRing([k2]);
    assert.equal((verifyWire("jobs", JSON.stringify(old), onlyNew, policy) as any).reason, "unknown_key");
    // and the v1 form signed with the old key
    const oldV1 = sealMessage("jobs", { a: 1 }, k1, { v1Only: true });
    assert.ok(verifyWire("jobs", JSON.stringify(oldV1), both, policy).ok);
    assert.equal((verifyWire("jobs", JSON.stringify(oldV1), onlyNew, policy) as any).reason, "forged");
  });

  it("stale and future messages are refused", () => {
    const now = 1_800_000_000_000;
    const old = sealMessage("jobs", { a: 1 }, k1, { now: now - 301_000 });
    assert.equal((verifyWire("jobs", JSON.stringify(old), new KeyRing([k1]), policy, now) as any).reason, "stale");
    const edge = sealMessage("jobs", { a: 1 }, k1, { now: now - 299_000 });
    assert.ok(verifyWire("jobs", JSON.stringify(edge), new KeyRing([k1]), policy, now).ok);
    const future = sealMessage("jobs", { a: 1 }, k1, { now: now + 31_000 });
    assert.equal((verifyWire("jobs", JSON.stringify(future), new KeyRing([k1]), policy, now) as any).reason, "clock_skew");
  });
});

describe("malformed and oversized input", () => {
  const bad: [string, string][] = [
    ["not JSON", "{nope"],
    ["an array", "[1,2]"],
    ["a string", '"x"'],
    ["null", "null"],
    ["meshSig a number", JSON.stringify({ ...bus.wire, meshSig: 5 })],
  ];
  for (const [name, raw] of bad) {
    it(`${name} → malformed`, () => {
      assert.equal((verifyWire(bus.channel, raw, ring, policy) as any).reason, "malformed");
    });
  }
  it("oversized → oversized, before parsing", () => {
    const raw = JSON.stringify({ ...bus.wire, pad: "x".repeat(70_000) });
    assert.equal((verifyWire(bus.channel, raw, ring, policy) as any).reason, "oversized");
  });
  it("multi-byte characters count as bytes", () => {
    const raw = JSON.stringify({ pad: "é".repeat(40_000) });
    assert.equal((verifyWire("jobs", raw, ring, policy) as any).reason, "oversized");
  });
  it("a Pilox channel message with a bad status is invalid_schema", () => {
    const m = sealMessage("jobs", {}, { id: "spec", secret }, { v1Only: true });
    void m;
    const k = { id: "spec", secret };
    assert.throws(() =>
      sealMessage("pilox:agent:status", { agentId: "a", status: "flying", timestamp: "2026-01-01T00:00:00.000Z" }, k),
    );
  });
});

describe("extension canonical form", () => {
  it("the hand-written canonical ext equals canonicalize()", async () => {
    const { canonicalExt } = await import("./ext.ts");
    const { canonicalize } = await import("../../canon/index.ts");
    for (const e of [
      { v: 1 as const, kid: "k1", ts: 1770026400123, ch: "pilox:system:events" },
      { v: 1 as const, kid: 'we"ird\\', ts: 0, ch: "a/b", origin: "https://mesh-a.example" },
    ]) {
      assert.equal(canonicalExt(e), canonicalize(e));
    }
  });
});

describe("trace context in meshExt", () => {
  const key = { id: "k1", secret: Buffer.from("bus-secret-for-trace-0123456789abcdef") };
  const tring = new KeyRing([key]);
  const trace = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "vendor=1" };
  const sealed = () => sealToWire("jobs", { task: "x" }, key, { trace }).wire;

  it("is sealed in canonical order, covered by sig, and verifies (fast path and reordered)", () => {
    const w = sealed();
    const m = JSON.parse(w);
    assert.deepEqual(Object.keys(m.meshExt), ["ch", "kid", "traceparent", "tracestate", "ts", "v", "sig"]);
    const { sig: _sig, ...unsigned } = m.meshExt;
    assert.equal(canonicalExt(unsigned), canonicalize(unsigned));
    const r = verifyWire("jobs", w, tring, policy);
    assert.ok(r.ok);
    assert.equal(r.value.ext?.traceparent, trace.traceparent);
    assert.equal(r.value.ext?.tracestate, "vendor=1");
    const { meshExt, ...rest } = m;
    assert.ok(verifyWire("jobs", JSON.stringify({ meshExt: { sig: meshExt.sig, ...meshExt }, ...rest }), tring, policy).ok);
  });

  it("a changed, added or removed trace context is forged; an invalid one is malformed", () => {
    const m = JSON.parse(sealed());
    const changed = { ...m, meshExt: { ...m.meshExt, traceparent: "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } };
    assert.equal((verifyWire("jobs", JSON.stringify(changed), tring, policy) as { reason: string }).reason, "forged");
    const { tracestate: _t, ...noState } = m.meshExt;
    assert.equal((verifyWire("jobs", JSON.stringify({ ...m, meshExt: noState }), tring, policy) as { reason: string }).reason, "forged");
    const plain = JSON.parse(sealToWire("jobs", { task: "x" }, key).wire);
    assert.equal((verifyWire("jobs", JSON.stringify({ ...plain, meshExt: { ...plain.meshExt, traceparent: trace.traceparent } }), tring, policy) as { reason: string }).reason, "forged");
    assert.equal((verifyWire("jobs", JSON.stringify({ ...m, meshExt: { ...m.meshExt, traceparent: "01-zz" } }), tring, policy) as { reason: string }).reason, "malformed");
  });

  it("the plain v1 form has no place for it", () => {
    assert.equal(JSON.parse(sealToWire("jobs", { task: "x" }, key, { trace, v1Only: true }).wire).meshExt, undefined);
  });
});
