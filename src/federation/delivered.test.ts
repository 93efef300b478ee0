import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLogger, type Logger } from "../log/index.ts";
import { DeliveredMemory } from "./delivered.ts";
import { FingerprintRing } from "./fingerprints.ts";

function logger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "info", format: "text", write: (l) => void lines.push(l) }), lines };
}

const open = (dir: string, capacity: number, log = logger().log) =>
  new DeliveredMemory(join(dir, "inbound-delivered.v2"), capacity, log, { journal: join(dir, "inbound-delivered.journal"), snapshot: join(dir, "inbound-delivered.json") });

describe("FingerprintRing", () => {
  it("answers as a first-in-first-out set of its last `capacity` keys would, through growth, wrap-around and deletions", () => {
    const capacity = 1_000;
    const r = new FingerprintRing(capacity, [0x12345678, 0x9abcdef0]);
    const order: string[] = [];
    const model = new Set<string>();
    let seed = 7;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let i = 0; i < 60_000; i++) {
      const key = `https://peer-${rand(3)}.example\nevent-${rand(4_000)}`;
      const f = r.fingerprint(key);
      assert.equal(r.has(f), model.has(key), `step ${i}: has(${JSON.stringify(key)})`);
      const added = r.add(f);
      assert.equal(added, !model.has(key), `step ${i}: add`);
      if (added) {
        order.push(key);
        model.add(key);
        if (order.length > capacity) model.delete(order.shift()!);
      }
      assert.equal(r.size, model.size);
    }
    for (const key of model) assert.ok(r.has(r.fingerprint(key)), key);
    assert.deepEqual(
      [...r.entries()].map((f) => `${f.hi}:${f.lo}`),
      order.map((k) => r.fingerprint(k)).map((f) => `${f.hi}:${f.lo}`),
      "entries oldest first",
    );
  });

  it("fingerprints depend on the seeds, and the same seeds give the same fingerprints", () => {
    const a = new FingerprintRing(10, [1, 2]);
    const b = new FingerprintRing(10, [1, 2]);
    const c = new FingerprintRing(10, [3, 4]);
    assert.deepEqual(a.fingerprint("peer\nx"), b.fingerprint("peer\nx"));
    assert.notDeepEqual(a.fingerprint("peer\nx"), c.fingerprint("peer\nx"));
    assert.notDeepEqual(a.fingerprint("peer\nx"), a.fingerprint("peer\ny"));
    assert.notDeepEqual(a.fingerprint("ab"), a.fingerprint("ba"));
    assert.notDeepEqual(a.fingerprint("a"), a.fingerprint("a\u0000"), "the length is part of it");
  });

  it("1,000,000 keys: no false positives among 200,000 others", () => {
    const r = new FingerprintRing(1_000_000, [0xdeadbeef, 0x0badf00d]);
    for (let i = 0; i < 1_000_000; i++) r.add(r.fingerprint(`https://a.example\n${i}`));
    assert.equal(r.size, 1_000_000);
    let hits = 0;
    for (let i = 1_000_000; i < 1_200_000; i++) if (r.has(r.fingerprint(`https://a.example\n${i}`))) hits++;
    assert.equal(hits, 0);
    assert.ok(r.has(r.fingerprint("https://a.example\n0")) && r.has(r.fingerprint("https://a.example\n999999")));
  });
});

describe("DeliveredMemory", () => {
  it("remembers pairs across a restart, and across a crash once committed", () => {
    const dir = mkdtempSync(join(tmpdir(), "pilox-delivered-"));
    const m = open(dir, 100);
    m.add("https://a.example\ne1");
    m.add("https://a.example\ne2");
    m.commit();
    m.add("https://a.example\nnever-committed");
    // No close: a crash. What commit wrote is there.
    const again = open(dir, 100);
    assert.ok(again.has("https://a.example\ne1") && again.has("https://a.example\ne2"));
    assert.ok(!again.has("https://a.example\nnever-committed"));
    assert.ok(!again.has("https://b.example\ne1"), "the peer is part of the pair");
    again.close();
    const lines = readFileSync(join(dir, "inbound-delivered.v2"), "utf8").split("\n");
    assert.match(lines[0]!, /^pilox-mesh relay-delivered 2 [0-9a-f]{8} [0-9a-f]{8}$/);
    assert.equal(lines.filter((l) => /^[0-9a-f]{16}$/.test(l)).length, 2);
  });

  it("forgets the oldest past its capacity, and its file stays within about twice that", () => {
    const dir = mkdtempSync(join(tmpdir(), "pilox-delivered-"));
    const m = open(dir, 1_000);
    for (let i = 0; i < 10_000; i++) {
      m.add(`p\n${i}`);
      if (i % 100 === 99) m.commit();
    }
    assert.equal(m.size, 1_000);
    assert.ok(!m.has("p\n8999") && m.has("p\n9000") && m.has("p\n9999"));
    const lines = readFileSync(join(dir, "inbound-delivered.v2"), "utf8").split("\n").length;
    assert.ok(lines <= 2_000 + 2, `${lines} lines`);
    m.close();
    const again = open(dir, 1_000);
    assert.equal(again.size, 1_000);
    assert.ok(!again.has("p\n8999") && again.has("p\n9000") && again.has("p\n9999"));
  });

  it("skips a torn last line; an unreadable file is reported and replaced", () => {
    const dir = mkdtempSync(join(tmpdir(), "pilox-delivered-"));
    const m = open(dir, 100);
    m.add("p\nkept");
    m.close();
    appendFileSync(join(dir, "inbound-delivered.v2"), "0123456789ab");
    const again = open(dir, 100);
    assert.equal(again.size, 1);
    assert.ok(again.has("p\nkept"));
    again.close();

    writeFileSync(join(dir, "inbound-delivered.v2"), "something else\n0123456789abcdef\n");
    const { log, lines } = logger();
    const fresh = open(dir, 100, log);
    assert.equal(fresh.size, 0);
    assert.ok(lines.some((l) => l.includes("ignoring an unreadable relay delivered memory") && l.includes("inbound-delivered.v2")), lines.join("\n"));
    fresh.add("p\nnew");
    fresh.close();
    assert.ok(open(dir, 100).has("p\nnew"));
  });

  it("takes the pairs of the earlier formats (journal and snapshot) once, then removes their files", () => {
    const dir = mkdtempSync(join(tmpdir(), "pilox-delivered-"));
    const journal = join(dir, "inbound-delivered.journal");
    const snapshot = join(dir, "inbound-delivered.json");
    writeFileSync(snapshot, JSON.stringify([["https://a.example\nold-1", 0]]));
    // A non-ASCII id, a line past a 1 MiB chunk boundary, and a torn last line.
    let text = `inf ${JSON.stringify("https://a.example\névénement-1")}\n`;
    for (let i = 0; text.length < (1 << 20) + 10_000; i++) text += `inf ${JSON.stringify(`https://b.example\nfill-${i}`)}\n`;
    text += `inf ${JSON.stringify("https://b.example\nlast")}\ninf "https://b.exa`;
    writeFileSync(journal, text);
    const { log, lines } = logger();
    const m = open(dir, 1_000_000, log);
    assert.ok(m.has("https://a.example\nold-1"), "from the snapshot");
    assert.ok(m.has("https://a.example\névénement-1"), "a non-ASCII key");
    assert.ok(m.has("https://b.example\nfill-0") && m.has("https://b.example\nlast"));
    assert.ok(!m.has("https://b.exa"));
    assert.equal(existsSync(journal) || existsSync(snapshot), false, "the older files are gone");
    assert.ok(lines.some((l) => l.includes("relay delivered memory migrated")));
    m.close();
    const again = open(dir, 1_000_000);
    assert.ok(again.has("https://a.example\névénement-1") && again.has("https://a.example\nold-1"));
    assert.equal(again.size, m.size);
  });
});
