import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bearerMatches, bearerToken } from "./bearer.ts";

describe("the bearer check", () => {
  const t = Buffer.from("s3cret-token-0123456789");
  it("takes exactly `Bearer <token>`", () => {
    assert.equal(bearerMatches("Bearer s3cret-token-0123456789", t), true);
    for (const h of ["bearer s3cret-token-0123456789", "Bearer  s3cret-token-0123456789", "Bearer s3cret-token-0123456789 ", "Bearer s3cret-token-012345678", "Bearer s3cret-token-01234567890", "Basic s3cret-token-0123456789", "", undefined]) {
      assert.equal(bearerMatches(h, t), false, String(h));
    }
  });
  it("never matches without a configured token, nor an over-long or non-printable one", () => {
    assert.equal(bearerMatches("Bearer x", undefined), false);
    assert.equal(bearerToken(`Bearer ${"a".repeat(1025)}`), undefined);
    assert.equal(bearerToken("Bearer a\u0000b"), undefined);
  });
});
