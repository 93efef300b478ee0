import assert from "node:assert/strict";
import { test } from "node:test";
import { Coalescer } from "./coalesce.ts";

test("the requests of one tick go as one send per key, in order, each answered with its own result", async () => {
  const sends: [string, number[]][] = [];
  const c = new Coalescer<number, string>(async (key, items) => {
    sends.push([key, items]);
    return items.map((i) => `${key}:${i}`);
  }, 100);
  const rs = await Promise.all([c.add("a", 1), c.add("b", 2), c.add("a", 3)]);
  assert.deepEqual(rs, ["a:1", "b:2", "a:3"]);
  assert.deepEqual(sends, [["a", [1, 3]], ["b", [2]]]);
  // The next tick is a new batch.
  assert.equal(await c.add("a", 4), "a:4");
  assert.deepEqual(sends.at(-1), ["a", [4]]);
});

test("a batch past its item or size bound goes as several sends, in order", async () => {
  const sends: number[][] = [];
  const c = new Coalescer<number, number>(async (_, items) => (sends.push(items), items), 3, 10, (n) => n);
  await Promise.all([1, 1, 1, 1, 6, 5, 1].map((n) => c.add("k", n)));
  assert.deepEqual(sends, [[1, 1, 1], [1, 6], [5, 1]]);
});

test("a failed send, or one that throws, rejects every request of its batch and no other", async () => {
  let fail = true;
  const c = new Coalescer<number, number>((_, items) => {
    if (items.includes(99)) throw new Error("thrown");
    return fail ? Promise.reject(new Error("down")) : Promise.resolve(items);
  }, 10);
  const r = await Promise.allSettled([c.add("a", 1), c.add("a", 2), c.add("b", 99)]);
  assert.deepEqual(r.map((x) => (x.status === "rejected" ? (x.reason as Error).message : x.value)), ["down", "down", "thrown"]);
  fail = false;
  assert.equal(await c.add("a", 7), 7);
});
