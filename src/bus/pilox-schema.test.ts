import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sealMessage } from "./envelope/seal.ts";
import { piloxEmitProblem } from "./pilox-schema.ts";

const meta = { v: 1, producer: "pilox-core", eventId: "3f2b8c1e-0d4a-4c5e-9b7a-1a2b3c4d5e6f" };
const ts = "2026-02-02T10:00:00.000Z";
const key = { id: "k", secret: Buffer.alloc(32, 7) };

describe("what we emit on the Pilox channels", () => {
  it("takes every event type the reference defines", () => {
    const ok: [string, unknown][] = [
      ["pilox:system:events", { type: "agent.created", payload: { agentId: "a", name: "n" }, timestamp: ts }],
      ["pilox:system:events", { type: "agent.imported", payload: { agentId: "a", name: "n", sourceType: "github", recordedSource: "registry" }, timestamp: ts }],
      ["pilox:system:events", { type: "model.pulled", payload: { modelName: "m" }, timestamp: ts }],
      ["pilox:system:events", { type: "backup.completed", payload: { backupId: "b" }, timestamp: ts }],
      ["pilox:system:events", { type: "mesh.wan.envelope", payload: { v: 1, correlationId: "corr-0001", sourceOrigin: "https://a.example" }, timestamp: ts }],
      ["hive:system:events", { type: "agent.paused", payload: { agentId: "a", name: "n" }, timestamp: ts }],
      ["pilox:agent:status", { agentId: "a", status: "running", timestamp: ts, instanceId: "i" }],
    ];
    for (const [ch, core] of ok) assert.equal(piloxEmitProblem(ch, core, meta), undefined, JSON.stringify(core));
  });

  it("refuses, naming the field, what a stock receiver refuses", () => {
    const bad: [unknown, unknown, RegExp][] = [
      [{ type: "agent.created", payload: { agentId: "a", name: "n" }, timestamp: ts }, { ...meta, producer: "pilox-mesh" }, /^meshMeta\.producer: must be "pilox-core"/],
      [{ type: "agent.created", payload: { agentId: "a", name: "n" }, timestamp: ts }, { ...meta, eventId: "not-a-uuid" }, /^meshMeta\.eventId: must be a UUID/],
      [{ type: "agent.exploded", payload: {}, timestamp: ts }, meta, /^type: /],
      [{ type: "agent.created", payload: { agentId: "a" }, timestamp: ts }, meta, /^payload\.name/],
      [{ type: "agent.created", payload: { agentId: "a", name: "n", extra: 1 }, timestamp: ts }, meta, /^payload\.extra/],
      [{ type: "mesh.wan.envelope", payload: { v: 1, correlationId: "corr-0001", sourceOrigin: "javascript:alert(1)" }, timestamp: ts }, meta, /^payload\.sourceOrigin: must be an http\(s\) URL/],
      [{ type: "mesh.wan.envelope", payload: { v: 1, correlationId: "corr-0001", sourceOrigin: "https://a.example", targetHandle: "" }, timestamp: ts }, meta, /^payload\.targetHandle/],
      [{ type: "agent.paused", payload: { agentId: "a", name: "n", reason: "idle" }, timestamp: ts }, meta, /reference bug/],
      [{ type: "agent.created", payload: { agentId: "a", name: "n" }, timestamp: "yesterday" }, meta, /^timestamp/],
    ];
    for (const [core, m, re] of bad) assert.match(piloxEmitProblem("pilox:system:events", core, m) ?? "accepted", re, JSON.stringify(core));
    assert.match(piloxEmitProblem("pilox:agent:status", { agentId: "a", status: "running", timestamp: ts, extra: 1 }, meta)!, /^extra/);
  });

  it("the sealer applies it; our own channels stay free-form", () => {
    assert.throws(() => sealMessage("pilox:system:events", { type: "agent.created", payload: { agentId: "a" }, timestamp: ts }, key), /pilox:system:events: payload\.name/);
    assert.ok(sealMessage("jobs", { anything: { goes: true } }, key));
  });
});
