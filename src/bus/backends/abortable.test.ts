import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { abortable } from "./abortable.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const tick = () => new Promise((r) => setImmediate(r));

test("abortable: what a finished run returned is not kept (a consumer's replies were, forever)", async () => {
  const { run } = abortable();
  const refs: WeakRef<object>[] = [];
  const reads = async () => {
    for (let i = 0; i < 100; i++) {
      const reply = { i, entries: new Array(100).fill("x") };
      refs.push(new WeakRef(reply));
      assert.equal(await run(Promise.resolve(reply)), reply);
    }
  };
  await reads();
  await tick();
  gc();
  await tick();
  gc();
  assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, `kept: ${refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0)}`);
});

test("abortable: abort rejects the runs in progress and every later one; their own outcome is swallowed", async () => {
  const { run, abort } = abortable();
  let fail!: (e: Error) => void;
  const inProgress = run(new Promise<never>((_, reject) => (fail = reject)));
  abort();
  await assert.rejects(inProgress, /closed/);
  fail(new Error("connection dropped")); // must not surface as an unhandled rejection
  await assert.rejects(run(Promise.resolve(1)), /closed/);
  await assert.rejects(run(Promise.reject(new Error("late"))), /closed/);
  await tick();
});

test("abortable: a run passes its promise's value or error through", async () => {
  const { run } = abortable();
  assert.equal(await run(Promise.resolve(7)), 7);
  await assert.rejects(run(Promise.reject(new Error("NOGROUP"))), /NOGROUP/);
});
