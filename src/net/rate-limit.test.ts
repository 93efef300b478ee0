import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter } from "./rate-limit.ts";

describe("RateLimiter", () => {
  it("allows a burst of twice the rate, then refills at the rate", () => {
    const l = new RateLimiter(() => 5);
    let ok = 0;
    for (let i = 0; i < 20; i++) if (l.take("a", 0)) ok++;
    assert.equal(ok, 10);
    assert.equal(l.take("a", 100), false, "0.5 tokens after 100 ms");
    assert.ok(l.take("a", 200), "one token after 200 ms");
    assert.ok(l.take("b", 200), "keys are independent");
  });

  it("keeps at most maxKeys keys under a flood of new ones", () => {
    const l = new RateLimiter(() => 1, 1_000);
    for (let i = 0; i < 50_000; i++) l.take(`10.0.${i >> 8}.${i & 255}`, 0);
    assert.ok(l.size <= 1_000, `size ${l.size}`);
    assert.ok(l.size >= 750);
  });
});
