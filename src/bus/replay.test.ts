import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReplayCache } from "./replay.ts";

describe("ReplayCache", () => {
  it("refuses an id a second time until it expires", () => {
    const c = new ReplayCache(100);
    assert.ok(c.claim("a", 1_000, 0));
    assert.equal(c.claim("a", 1_000, 999), false);
    assert.ok(c.claim("a", 3_000, 1_000), "expired: a new claim");
    assert.equal(c.claim("a", 3_000, 2_000), false);
  });

  it("release forgets an id", () => {
    const c = new ReplayCache(100);
    c.claim("a", 1_000, 0);
    c.release("a");
    assert.ok(c.claim("a", 1_000, 0));
  });

  it("never holds more than its bound, forgetting the oldest first", () => {
    const c = new ReplayCache(10);
    for (let i = 0; i < 1_000; i++) c.claim(`id-${i}`, 1e12, 0);
    assert.equal(c.size, 10);
    assert.ok(c.has("id-999", 0));
    assert.equal(c.has("id-989", 0), false);
  });

  it("drops expired ids as claims go on, so memory follows the window", () => {
    const c = new ReplayCache(1_000_000);
    // 10,000 claims, each remembered for 100 ms of simulated time, one per ms.
    for (let t = 0; t < 10_000; t++) c.claim(`id-${t}`, t + 100, t);
    assert.ok(c.size <= 100 + 2 * 64, `size ${c.size}`);
    assert.ok(c.has("id-9999", 9_999));
  });

  it("at its bound keeps exactly the newest ids through many claims", () => {
    const c = new ReplayCache(50_000);
    for (let i = 0; i < 250_000; i++) c.claim(`id-${i}`, 1e15, 0);
    assert.equal(c.size, 50_000);
    assert.ok(c.has("id-200000", 0));
    assert.equal(c.has("id-199999", 0), false);
  });

  it("a released and re-claimed id is dropped at its latest claim, not its first", () => {
    const c = new ReplayCache(3);
    c.claim("a", 1e15, 0);
    c.release("a");
    c.claim("b", 1e15, 0);
    c.claim("a", 1e15 + 1, 0);
    c.claim("c", 1e15, 0); // drops the first "a" ring entry: "a" was claimed again, so it stays
    assert.ok(c.has("a", 0));
    assert.equal(c.claim("a", 1e15, 0), false);
  });

  it("snapshot and restore keep unexpired ids, Infinity included", () => {
    const c = new ReplayCache(100);
    c.claim("old", 10, 0);
    c.claim("new", 5_000, 0);
    c.claim("v1", Number.POSITIVE_INFINITY, 0);
    const snap = c.snapshot(100);
    assert.deepEqual(snap, [["new", 5_000], ["v1", 0]]);
    const d = new ReplayCache(100);
    d.restore(snap, 100);
    assert.equal(d.claim("new", 5_000, 200), false);
    assert.equal(d.claim("v1", Number.POSITIVE_INFINITY, 1e15), false);
    assert.ok(d.claim("old", 10_000, 200));
  });
});
