import assert from "node:assert/strict";
import { test } from "node:test";
import { SEQ_WINDOW, SeqMemory } from "./seq-set.ts";

test("in-order sequences stay one range; repeats are seen", () => {
  let m = new SeqMemory();
  assert.equal(m.seen(5), false);
  for (let s = 5; s < 1_005; s++) {
    assert.equal(m.seen(s), false);
    m = m.with(s);
  }
  assert.equal(m.ranges, 1);
  assert.equal(m.seen(5), true);
  assert.equal(m.seen(1_004), true);
  assert.equal(m.seen(1_005), false);
});

test("out of order and gaps: each sequence delivered once, gaps filled later", () => {
  let m = new SeqMemory();
  for (const s of [10, 12, 11, 15, 14, 20]) {
    assert.equal(m.seen(s), false, `first ${s}`);
    m = m.with(s);
    assert.equal(m.seen(s), true, `again ${s}`);
  }
  assert.deepEqual(m.toJSON().r, [[10, 12], [14, 15], [20, 20]]);
  assert.equal(m.seen(13), false);
  m = m.with(13);
  assert.deepEqual(m.toJSON().r, [[10, 15], [20, 20]]);
});

test("below the window everything is a repeat, and old ranges are forgotten", () => {
  let m = new SeqMemory().with(1).with(3);
  m = m.with(3 + SEQ_WINDOW + 10);
  assert.equal(m.ranges, 1);
  assert.equal(m.seen(2), true);
  assert.equal(m.seen(3 + SEQ_WINDOW + 9), false);
});

test("round-trips through its stored form; garbage reads as empty", () => {
  const m = new SeqMemory().with(7).with(8).with(30);
  const back = SeqMemory.parse(JSON.stringify(m));
  assert.deepEqual(back.toJSON(), m.toJSON());
  assert.equal(SeqMemory.parse("{").ranges, 0);
  assert.equal(SeqMemory.parse('{"r":[[5,1],["a",2],[1,2]]}').ranges, 1);
});
