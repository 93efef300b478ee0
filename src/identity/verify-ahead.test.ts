import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keyFromSeedHex, signHex } from "./ed25519.ts";
import { collectChecks, knownGood, verifyAhead, verifyHexOf, type Check } from "./verify-ahead.ts";

const key = keyFromSeedHex("11".repeat(32));
const other = keyFromSeedHex("22".repeat(32));

describe("checks verified ahead", () => {
  it("remembers only good results, verified on the worker pool; anything else is verified on the spot", async () => {
    const good: Check = [key.publicKeyHex, "hello", signHex(key, "hello")];
    const wrongKey: Check = [other.publicKeyHex, "hello", signHex(key, "hello")];
    const badSig: Check = [key.publicKeyHex, "hello", "00".repeat(64)];
    await verifyAhead([good, wrongKey, badSig]);
    assert.equal(knownGood(good), true);
    assert.equal(knownGood(wrongKey), false);
    assert.equal(knownGood(badSig), false);
    assert.equal(verifyHexOf(...good), true);
    assert.equal(verifyHexOf(...wrongKey), false);
    assert.equal(verifyHexOf(...badSig), false);
    // The same key and signature over other text is no match for what was remembered.
    assert.equal(verifyHexOf(key.publicKeyHex, "hello!", good[2]), false);
    // Not asked ahead: verified on the spot, both ways.
    const late = "late";
    assert.equal(knownGood([key.publicKeyHex, late, signHex(key, late)]), false);
    assert.equal(verifyHexOf(key.publicKeyHex, late, signHex(key, late)), true);
  });

  it("collect mode lists every check a pure function makes and takes each as good", () => {
    const checks = collectChecks(() => {
      assert.equal(verifyHexOf(key.publicKeyHex, "a", "00".repeat(64)), true);
      assert.equal(verifyHexOf(other.publicKeyHex, "b", "11".repeat(64)), true);
    });
    assert.deepEqual(checks, [
      [key.publicKeyHex, "a", "00".repeat(64)],
      [other.publicKeyHex, "b", "11".repeat(64)],
    ]);
    // Outside it, the same calls verify for real.
    assert.equal(verifyHexOf(key.publicKeyHex, "a", "00".repeat(64)), false);
  });

  it("malformed input asked ahead is refused, never remembered", async () => {
    const junk: Check[] = [["zz", "x", "00".repeat(64)], [key.publicKeyHex, "x", "not hex"]];
    await verifyAhead(junk);
    for (const c of junk) assert.equal(knownGood(c), false);
  });
});
