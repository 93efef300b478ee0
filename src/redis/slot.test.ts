import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keySlot } from "./slot.ts";

describe("keySlot", () => {
  it("is CRC16/XMODEM modulo 16384, as the Redis Cluster specification gives it", () => {
    // The specification's check value: CRC16("123456789") = 0x31C3.
    assert.equal(keySlot("123456789"), 0x31c3 % 16384);
    assert.equal(keySlot(""), 0);
    assert.equal(keySlot("foo"), 12182);
  });
  it("hashes only a non-empty hash tag", () => {
    assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
    assert.equal(keySlot("foo{}{bar}"), keySlot("foo{}{bar}"));
    assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
    assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
    assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
  });
});
