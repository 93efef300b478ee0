import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseEntry, Spool, SpoolFullError } from "./spool.ts";

const dir = mkdtempSync(join(tmpdir(), "spool-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("Spool", () => {
  it("keeps order across peek/drop and survives a reopen", () => {
    const d = join(dir, "a");
    const s = new Spool(d, 1 << 20);
    for (let i = 0; i < 10; i++) s.append({ channel: "c", message: { i } });
    assert.deepEqual(s.peek(3).map((e) => e!.message["i"]), [0, 1, 2]);
    s.drop(3);
    const again = new Spool(d, 1 << 20);
    assert.equal(again.size, 7);
    assert.deepEqual(again.peek(100).map((e) => e!.message["i"]), [3, 4, 5, 6, 7, 8, 9]);
    again.drop(7);
    assert.equal(again.size, 0);
    assert.equal(again.bytes, 0);
    assert.equal(new Spool(d, 1 << 20).size, 0);
  });

  it("emptied, it keeps its spent head until that reaches 1 MiB, then is truncated", () => {
    const d = join(dir, "lazy");
    const file = join(d, "durable.jsonl");
    const s = new Spool(d, 8 << 20);
    for (let i = 0; i < 3; i++) s.append({ channel: "c", message: { i } });
    s.peek(3);
    s.drop(3);
    const spent = statSync(file).size;
    assert.ok(spent > 0, "not truncated on every emptying");
    s.append({ channel: "c", message: { i: 3 } });
    assert.deepEqual(new Spool(d, 8 << 20).peek(10).map((e) => e!.message["i"]), [3], "a reopen starts after the spent head");
    s.peek(1);
    s.drop(1);
    assert.equal(new Spool(d, 8 << 20).size, 0);
    const pad = "x".repeat(64 * 1024);
    for (let i = 0; i < 17; i++) s.append({ channel: "c", message: { i, pad } });
    s.peek(100);
    s.drop(17);
    assert.equal(statSync(file).size, 0, "past 1 MiB spent, an emptied spool is truncated");
    s.append({ channel: "c", message: { i: 99 } });
    assert.deepEqual(s.peek(10).map((e) => e!.message["i"]), [99]);
    s.close();
    assert.deepEqual(new Spool(d, 8 << 20).peek(10).map((e) => e!.message["i"]), [99]);
  });

  it("refuses at the byte bound", () => {
    const s = new Spool(join(dir, "b"), 200);
    assert.throws(() => {
      for (let i = 0; i < 100; i++) s.append({ channel: "c", message: { i } });
    }, SpoolFullError);
    assert.ok(s.bytes <= 200);
  });

  it("cuts a torn last line and skips a corrupt one", () => {
    const d = join(dir, "c");
    const s = new Spool(d, 1 << 20);
    s.append({ channel: "c", message: { i: 1 } });
    appendFileSync(join(d, "durable.jsonl"), "{not json}\n");
    s.append({ channel: "c", message: { i: 2 } });
    appendFileSync(join(d, "durable.jsonl"), '{"channel":"c","mess');
    const r = new Spool(d, 1 << 20);
    assert.equal(r.size, 3);
    const batch = r.peek(10);
    assert.deepEqual(batch.map((e) => e?.message["i"] ?? null), [1, null, 2]);
  });

  it("an entry larger than one read chunk still comes out whole", () => {
    const w = new Spool(join(dir, "d"), 8 << 20);
    w.append({ channel: "c", message: { big: "x".repeat(2 * 1024 * 1024) } });
    w.append({ channel: "c", message: { i: 2 } });
    w.close();
    const s = new Spool(join(dir, "d"), 8 << 20); // read back from disk, not from the writer's memory
    const first = s.peek(10);
    assert.equal(first.length, 1);
    assert.equal((first[0]!.message["big"] as string).length, 2 * 1024 * 1024);
    s.drop(1);
    assert.deepEqual(s.peek(10).map((e) => e!.message["i"]), [2]);
  });

  it("peekLines gives the lines as written, with their sizes, reading about what it needs", () => {
    const w = new Spool(join(dir, "e"), 64 << 20);
    const entries = Array.from({ length: 5000 }, (_, i) => ({ channel: "c", message: { i, pad: "é".repeat(i % 7) } }));
    // One line far above the average, where a read sized by the average ends mid-line.
    entries[3000] = { channel: "c", message: { i: 3000, pad: "y".repeat(200_000) } };
    for (const e of entries) w.append(e);
    w.close();
    const s = new Spool(join(dir, "e"), 64 << 20); // read back from disk
    assert.equal(s.peekLines(1)[0]!.trusted, false);
    const seen: number[] = [];
    while (s.size > 0) {
      const lines = s.peekLines(64);
      assert.ok(lines.length > 0);
      for (const l of lines) {
        assert.equal(l.bytes, Buffer.byteLength(l.text) + 1);
        assert.equal(l.text, JSON.stringify(entries[seen.length]));
        seen.push(seen.length);
      }
      s.drop(lines.length);
    }
    assert.equal(seen.length, 5000);
    assert.equal(s.bytes, 0);
  });

  it("a batch's lines are on disk only after flush(batch), count against the bound before, and batches are separate", () => {
    const d = join(dir, "f");
    const s = new Spool(d, 400);
    const a = s.batch();
    const b = s.batch();
    s.append({ channel: "c", message: { i: 1 } }, a);
    s.append({ channel: "c", message: { i: 2 } }, b);
    s.append({ channel: "c", message: { i: 3 } }, a);
    assert.equal(s.size, 0);
    assert.equal(new Spool(d, 400).size, 0, "nothing written yet");
    assert.throws(() => {
      for (let i = 0; i < 20; i++) s.append({ channel: "c", message: { pad: "x".repeat(20) } }, b);
    }, SpoolFullError);
    assert.equal(s.flush(a), 2);
    assert.equal(s.flush(a), 0);
    assert.deepEqual(s.peek(10).map((e) => e!.message["i"]), [1, 3]);
    assert.equal(new Spool(d, 400).size, 2);
  });

  it("lines this process wrote come from memory, marked trusted, in order with those read back from disk", () => {
    const d = join(dir, "g");
    const first = new Spool(d, 64 << 20);
    for (let i = 0; i < 3; i++) first.append({ channel: "c", message: { i } });
    first.close();
    const s = new Spool(d, 64 << 20);
    const b = s.batch();
    // About 6 MB in all: past what the cache holds, so the tail is read from disk again.
    const pad = "p".repeat(600);
    for (let i = 3; i < 10_000; i++) s.append({ channel: "c", message: { i, pad } }, i % 2 ? b : undefined);
    s.flush(b);
    const seen: { i: number; trusted: boolean }[] = [];
    while (s.size > 0) {
      const lines = s.peekLines(100);
      for (const l of lines) {
        assert.equal(l.bytes, Buffer.byteLength(l.text) + 1);
        seen.push({ i: parseEntry(l.text)!.message["i"] as number, trusted: l.trusted });
      }
      s.drop(lines.length);
    }
    assert.deepEqual(seen.map((x) => x.i).slice(0, 3), [0, 1, 2]);
    assert.equal(seen.length, 10_000);
    assert.deepEqual(seen.slice(0, 3).map((x) => x.trusted), [false, false, false], "from the last run: read back from disk");
    assert.ok(seen.slice(3).some((x) => x.trusted) && seen.slice(3).some((x) => !x.trusted), "past the cache's bound, lines are read from disk again");
    // In file order: the direct (even) appends as they came, then the batch (odd) at its flush.
    const evens = Array.from({ length: 4_998 }, (_, k) => 4 + 2 * k);
    const odds = Array.from({ length: 4_999 }, (_, k) => 3 + 2 * k);
    assert.deepEqual(seen.slice(3).map((x) => x.i), [...evens, ...odds]);
    // Emptied: the file is cut back and new lines are cached again.
    s.append({ channel: "c", message: { i: -1 } });
    assert.deepEqual(s.peekLines(5).map((l) => l.trusted), [true]);
  });
});
