import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Spool } from "../bus/spool.ts";
import { silentLogger } from "../log/index.ts";
import { createMetrics } from "../metrics/index.ts";
import type { Peer } from "../federation/index.ts";
import type { MeshBus } from "../bus/index.ts";
import { keyFromSeedHex } from "../identity/index.ts";
import { frameBody } from "./frame.ts";
import { FrameLog } from "./frame-log.ts";
import { SeqBlocks } from "./seq-blocks.ts";
import { Sender, type SenderDeps } from "./sender.ts";

// Unit tests depend on nothing under test/: a scratch root of their own, a fresh directory per test.
const root = mkdtempSync(join(tmpdir(), "pilox-sender-"));
after(() => rmSync(root, { recursive: true, force: true }));
const scratchDir = () => mkdtempSync(join(root, "t-"));
const peer: Peer = { origin: "https://b.example", url: "https://b.example", keys: [], accept: new Set(), forward: new Set(), ratePerSecond: 1, transport: "wan" };
const deps = (dir: string): SenderDeps => ({
  bus: () => {
    throw new Error("not started");
  },
  identity: () => {
    throw new Error("not started");
  },
  ourOrigin: () => "https://a.example",
  prefix: () => "pilox-mesh.wan.v1",
  frameMaxMessages: () => 64,
  frameMaxBytes: () => 1 << 20,
  frameMaxWaitMs: () => 5,
  maxInFlight: () => 64,
  js: () => undefined,
  nats: {} as SenderDeps["nats"],
  dir,
  seqBlocks: new SeqBlocks(join(dir, "seq-blocks")),
  queueMaxBytes: 1 << 20,
  metrics: createMetrics().wan,
  log: silentLogger,
});
const msg = (id: string) => ({ channel: "a2b", message: { type: "t", meshMeta: { v: 1, producer: "p", eventId: id } } });

test("a fresh state directory's first frame takes its sequence from the site's blocks, at the time in microseconds", () => {
  const before = Date.now() * 1000;
  const blocks = new SeqBlocks(join(scratchDir(), "seq-blocks"));
  const first = blocks.reserve(1024, 1);
  assert.ok(first >= before && first <= Date.now() * 1000);
  assert.equal(new Sender(peer, deps(scratchDir())).status().lastSeq, 0, "nothing taken before the first frame");
});

test("after a crash between writing a frame and dropping its messages, they are not framed twice", () => {
  const dir = scratchDir();
  const q = new Spool(join(dir, "queue"), 1 << 20);
  for (const id of ["e1", "e2", "e3"]) q.append(msg(id));
  q.close();
  mkdirSync(join(dir, "frames"), { recursive: true });
  writeFileSync(join(dir, "frames", "100.json"), JSON.stringify({ subject: "s", msgId: "x-100", seq: 100, headers: {}, body: "{}", messages: 2, first: "e1", createdMs: Date.now() }));
  writeFileSync(join(dir, "frames", "99.json.tmp"), "{torn");
  writeFileSync(join(dir, "seq"), "100");
  const s = new Sender(peer, deps(dir));
  const st = s.status();
  assert.equal(st.lastSeq, 100);
  assert.equal(st.queue.frames, 1);
  assert.equal(st.queue.messages, 3, "two in the frame, one still queued: e1 and e2 once");
});

test("a frame whose messages already left the queue leaves the queue alone", () => {
  const dir = scratchDir();
  const q = new Spool(join(dir, "queue"), 1 << 20);
  q.append(msg("e3"));
  q.close();
  mkdirSync(join(dir, "frames"), { recursive: true });
  writeFileSync(join(dir, "frames", "7.json"), JSON.stringify({ subject: "s", msgId: "x-7", seq: 7, headers: {}, body: "{}", messages: 2, first: "e1", createdMs: Date.now() }));
  const s = new Sender(peer, deps(dir));
  assert.equal(s.status().queue.messages, 3);
  assert.equal(s.status().lastSeq, 7);
});

test("queue lines become frame entries as written; a line of another shape is rewritten, a corrupt one skipped", async () => {
  const dir = scratchDir();
  const q = new Spool(join(dir, "queue"), 1 << 20);
  const traced = { ...msg("e2"), trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } };
  q.append(msg("e1"));
  q.append(traced);
  // Keys the feed never writes for a WAN peer: the frame entry must not carry them.
  q.append({ ...msg("e3"), origin: "https://c.example", v1: true });
  q.close();
  appendFileSync(join(dir, "queue", "durable.jsonl"), "{not json}\n");
  const key = keyFromSeedHex("11".repeat(32));
  const s = new Sender(peer, {
    ...deps(dir),
    frameMaxMessages: () => 2,
    identity: () => key,
    bus: () => ({ subscribe: async () => ({ close: async () => {} }) }) as unknown as MeshBus,
  });
  await s.start();
  const end = Date.now() + 5_000;
  while (s.status().queue.frames < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  await s.close();
  const frames = new FrameLog(join(dir, "frames")).load();
  assert.equal(frames.length, 2);
  assert.equal(frames[0]!.body, frameBody([msg("e1"), traced]));
  assert.equal(frames[0]!.first, "e1");
  assert.equal(frames[1]!.body, frameBody([msg("e3")]), "origin and v1 left out; the corrupt line skipped");
  assert.equal(frames[1]!.messages, 1);
  assert.equal(s.status().queue.messages, 3);
});

test("two senders of one site never use the same sequence (their frames' Nats-Msg-Id would collide)", () => {
  const blocks = new SeqBlocks(join(scratchDir(), "seq-blocks"));
  const a = blocks.reserve(1024, 1);
  const b = blocks.reserve(1024, 1);
  const a2 = blocks.reserve(1024, a + 1024);
  assert.ok(b >= a + 1024 && a2 >= b + 1024, `${a} ${b} ${a2}`);
  assert.ok(a >= Date.now() * 1000 - 60_000_000, "a fresh allocator starts at µs since the epoch");
});

test("after a restart a sender goes on right after what was reserved, not at the clock", () => {
  const dir = scratchDir();
  const t = Date.now() * 1000 - 3_600_000_000; // reserved an hour ago
  const blocks = new SeqBlocks(join(dir, "seq-blocks"), [t + 255, t + 511]);
  assert.equal(blocks.reserve(256, t + 256), t + 512, "past both senders' blocks, no leap");
});

test("a restarted allocator goes on past every block handed out", () => {
  const file = join(scratchDir(), "seq-blocks");
  const first = new SeqBlocks(file);
  const x = first.reserve(1024, 0);
  writeFileSync(file, String(x + 10_000_000_000));
  assert.ok(new SeqBlocks(file).reserve(1024, 0) >= x + 10_000_000_000);
});
