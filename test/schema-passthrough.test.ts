/**
 * Inbound schemas check, they never rebuild: for every input one accepts, what it hands on is
 * the input itself, canonically byte-for-byte (issue 18: an array payload went through an object
 * schema and came out as {"0":1}). Fed with the seeded fuzz corpus around valid values, and with
 * every object inside a valid value swapped for an array. (Checks that only answer a problem,
 * such as meshMeta's, hand nothing on: the caller keeps its input.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as v from "valibot";
import { WAN_ENVELOPE } from "../src/bus/pilox-schema.ts";
import { canonicalize } from "../src/canon/index.ts";
import { RelayBody } from "../src/federation/inbound.ts";
import { checkRecord } from "../src/registry/record.ts";
import { corpus } from "./helpers/fuzz.ts";

const meta = { v: 1, producer: "pilox-core", eventId: "0b8f2a52-5e35-4a8e-9d0a-6c1e0f4b8c11", correlationId: "corr-1" };
const VALID: [string, (x: unknown) => { ok: boolean; out?: unknown }, unknown][] = [
  ["wan-envelope-v1", (x) => parsed(WAN_ENVELOPE, x), { v: 1, correlationId: "corr-12345678", sourceOrigin: "https://a.example", targetOrigin: "https://b.example", targetHandle: "h", payload: { n: 1, list: [1, { a: 2 }], o: { p: {} } }, schema: "wan-envelope-v1" }],
  ["relay body", (x) => parsed(RelayBody, x), { messages: [{ channel: "agents.tasks", message: { type: "t", payload: { a: [1] }, meshMeta: meta } }] }],
  [
    "registry record",
    (x) => {
      const r = checkRecord(x);
      return r.ok ? { ok: true, out: r.record } : { ok: false };
    },
    { schema: "hive-registry-record-v1", handle: "urn:pilox:agent:x:0001", updatedAt: "2026-11-01T10:00:00Z", agentCardUrl: "https://a.example/card.json", pricing: { currency: "EUR" }, publicKeys: { ed25519: [{ kid: "k1", publicKeyHex: "ab".repeat(32) }] }, proof: { type: "t", extra: { deep: [1] } } },
  ],
];

function parsed(schema: v.GenericSchema, x: unknown): { ok: boolean; out?: unknown } {
  const r = v.safeParse(schema, x);
  return r.success ? { ok: true, out: r.output } : { ok: false };
}

/** Every variant of `x` with one nested object replaced by `[]` or `[<its first value>]`. */
function arraysForObjects(x: unknown): unknown[] {
  const out: unknown[] = [];
  const walk = (node: unknown, replace: (v: unknown) => unknown) => {
    if (node === null || typeof node !== "object") return;
    if (!Array.isArray(node)) {
      out.push(replace([]), replace([Object.values(node)[0] ?? 1]));
      for (const k of Object.keys(node)) walk((node as Record<string, unknown>)[k], (v) => replace({ ...(node as object), [k]: v }));
    } else node.forEach((item, i) => walk(item, (v) => replace(node.map((y, j) => (j === i ? v : y)))));
  };
  walk(x, (v) => v);
  return out;
}

describe("inbound schemas pass their input through unchanged", () => {
  for (const [name, check, valid] of VALID) {
    it(name, () => {
      assert.equal(check(valid).ok, true, "the valid value is accepted");
      const inputs: unknown[] = [valid, ...arraysForObjects(valid)];
      for (const text of corpus(18, 400, [JSON.stringify(valid)])) {
        try {
          inputs.push(JSON.parse(text));
        } catch {
          /* not JSON: nothing to check */
        }
      }
      let accepted = 0;
      for (const input of inputs) {
        let r: { ok: boolean; out?: unknown };
        try {
          r = check(input);
        } catch {
          continue; // too deep for a recursive walker: refused upstream by the depth guard
        }
        if (!r.ok) continue;
        accepted++;
        assert.equal(canonicalize(r.out), canonicalize(input), `${name}: accepted, but handed on changed: ${JSON.stringify(input).slice(0, 200)}`);
      }
      assert.ok(accepted >= 1);
    });
  }
});
