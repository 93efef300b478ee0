import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { hmacHex } from "./hmac.ts";

const ref = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest("hex");

describe("hmacHex equals createHmac", () => {
  const keys = [
    Buffer.from("spec-example-bus-secret-0123456789abcdef"),
    Buffer.alloc(0),
    Buffer.alloc(64, 0xab), // exactly one block
    Buffer.alloc(65, 0xcd), // longer than a block: hashed first
    Buffer.from([0xff, 0x80, 0x00, 0x7f]), // bytes that are not ASCII: the scratch-buffer path
    Buffer.from("clé-secrète-ünïcode-0123456789abcdef"), // UTF-8 secret
  ];
  const inputs = ["", "a", "x".repeat(55), "x".repeat(64), "é€😀\u{10FFFF}", "\ud800 lone surrogate", "y".repeat(5000)];
  for (const [ki, key] of keys.entries()) {
    it(`key ${ki} (${key.length} bytes)`, () => {
      for (const s of inputs) assert.equal(hmacHex(key, s), ref(key, s), JSON.stringify(s.slice(0, 20)));
    });
  }

  it("an input past the scratch bound (createHmac path for a non-ASCII key) gives the same bytes", () => {
    const k = keys[4]!;
    const big = "z".repeat(400_000); // bound 1.2 MB > 1 MiB
    assert.equal(hmacHex(k, big), ref(k, big));
    assert.equal(hmacHex(k, "small after big"), ref(k, "small after big"));
  });

  it("keys with the same bytes in different Buffers agree, different keys differ", () => {
    assert.equal(hmacHex(Buffer.from("k1-secret"), "m"), hmacHex(Buffer.from("k1-secret"), "m"));
    assert.notEqual(hmacHex(Buffer.from("k1-secret"), "m"), hmacHex(Buffer.from("k2-secret"), "m"));
  });
});
