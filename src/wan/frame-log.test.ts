import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { FrameLog, type StoredFrame } from "./frame-log.ts";

// Unit tests depend on nothing under test/: a scratch root of their own, a fresh directory per test.
const root = mkdtempSync(join(tmpdir(), "pilox-frame-log-"));
after(() => rmSync(root, { recursive: true, force: true }));
const scratchDir = () => mkdtempSync(join(root, "t-"));
const frame = (seq: number): StoredFrame => ({ subject: "pilox-mesh.wan.v1.b.a", msgId: `a-${seq}`, seq, headers: { "Pilox-Mesh-Seq": String(seq) }, body: `{"v":1,"messages":[{"channel":"c","message":{"n":${seq},"s":"é\\n"}}]}`, messages: 1, first: `e${seq}`, createdMs: 1 });

test("frames come back after a restart byte for byte, without those acknowledged at the head", () => {
  const dir = scratchDir();
  const log = new FrameLog(dir);
  assert.deepEqual(log.load(), []);
  for (const s of [1, 2, 3, 4]) log.append(frame(s));
  log.done(1);
  log.done(3); // out of order: the head stays at 2
  log.close();
  const again = new FrameLog(dir).load();
  assert.deepEqual(again.map((f) => f.seq), [2, 3, 4], "3 is behind the head and comes back (its resend is a duplicate)");
  assert.deepEqual(again[0], frame(2));
});

test("with no frame outstanding the head moves to the end; the file is emptied once it holds 1 MiB", () => {
  const dir = scratchDir();
  const log = new FrameLog(dir);
  log.load();
  for (const s of [1, 2]) log.append(frame(s));
  log.done(2);
  log.done(1);
  const size = statSync(join(dir, "frames.log")).size;
  assert.ok(size > 0, "a small log is not truncated on every emptying");
  assert.equal(Number(readFileSync(join(dir, "frames.head"), "utf8").trim()), size);
  log.append(frame(3));
  log.close();
  assert.deepEqual(new FrameLog(dir).load().map((f) => f.seq), [3]);
  const l2 = new FrameLog(dir);
  l2.load();
  const big = { ...frame(4), body: "x".repeat(1024 * 1024) };
  l2.append(big);
  l2.done(3);
  l2.done(4);
  assert.equal(statSync(join(dir, "frames.log")).size, 0);
  assert.equal(Number(readFileSync(join(dir, "frames.head"), "utf8").trim()), 0);
  l2.append(frame(5));
  l2.close();
  assert.deepEqual(new FrameLog(dir).load().map((f) => f.seq), [5]);
});

test("a torn last record is cut off at load; what comes after is appended cleanly", () => {
  const dir = scratchDir();
  const log = new FrameLog(dir);
  log.load();
  log.append(frame(1));
  log.close();
  appendFileSync(join(dir, "frames.log"), '{"subject":"x","msgId":"a-2","seq":2,"head');
  const l2 = new FrameLog(dir);
  assert.deepEqual(l2.load().map((f) => f.seq), [1]);
  l2.append(frame(2));
  l2.close();
  assert.deepEqual(new FrameLog(dir).load().map((f) => f.seq), [1, 2]);
  assert.ok(readFileSync(join(dir, "frames.log"), "utf8").endsWith("\n"));
});
