import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { randomEventId } from "./event-id.ts";

describe("randomEventId", () => {
  it("makes version 4 UUIDs, all different, across pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const id = randomEventId();
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
    }
    assert.equal(seen.size, 5_000);
  });

  it("uses every hex digit in every free position (the bytes are random)", () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 2_000; i++) [...randomEventId()].forEach((c, k) => digits[k]!.add(c));
    for (const k of [0, 7, 9, 15, 20, 35]) assert.equal(digits[k]!.size, 16, `position ${k}`);
    assert.deepEqual([...digits[14]!], ["4"]);
    assert.deepEqual([...digits[19]!].sort(), ["8", "9", "a", "b"]);
  });
});
