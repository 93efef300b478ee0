import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "../log/index.ts";
import { ReplayCache, ReplayJournal } from "./replay.ts";

/** The live claims as ids (of `names`) with their expiries: what the memory would save. */
function liveIds(c: ReplayCache, names: string[], now: number): [string, number][] {
  const byPrint = new Map(names.map((n) => {
    const f = c.fingerprint(n);
    return [`${f.hi}:${f.lo}`, n] as const;
  }));
  return [...c.live(now)].map(({ f, exp }) => [byPrint.get(`${f.hi}:${f.lo}`) ?? "?", exp]);
}

describe("ReplayCache", () => {
  it("refuses an id a second time until it expires", () => {
    const c = new ReplayCache(100);
    assert.ok(c.claim("a", 1_000, 0));
    assert.equal(c.claim("a", 1_000, 999), false);
    assert.ok(c.claim("a", 3_000, 1_000), "expired: a new claim");
    assert.equal(c.claim("a", 3_000, 2_000), false);
  });

  it("claimAt: an id is taken at its first position by every reader, refused at any other, until it expires; positions survive growth and eviction", () => {
    const c = new ReplayCache(100);
    assert.equal(c.claimAt("e1", "1-0", 1_000, 0), true);
    assert.equal(c.claimAt("e1", "1-0", 1_000, 0), true, "another reader at the same entry");
    assert.equal(c.claimAt("e1", "9-0", 1_000, 0), false, "a copy at a later entry");
    assert.equal(c.claimAt("e1", "9-0", 2_000, 1_000), true, "after it expired, a new first position");
    for (let i = 0; i < 150; i++) assert.equal(c.claimAt(`x${i}`, `${i + 10}-0`, 5_000, 1_000), true);
    // Grown past its first 16 slots and evicted past 100: the kept ones still know their entry.
    assert.equal(c.claimAt("x149", "159-0", 5_000, 1_000), true);
    assert.equal(c.claimAt("x149", "160-0", 5_000, 1_000), false);
    assert.equal(c.claimAt("x100", "110-0", 5_000, 1_000), true);
    assert.equal(c.claimAt("x0", "999-0", 5_000, 1_000), true, "evicted: forgotten");
  });

  it("release forgets an id", () => {
    const c = new ReplayCache(100);
    c.claim("a", 1_000, 0);
    c.release("a");
    assert.ok(c.claim("a", 1_000, 0));
  });

  it("never holds more than its bound, forgetting the oldest first", () => {
    const c = new ReplayCache(10);
    for (let i = 0; i < 1_000; i++) c.claim(`id-${i}`, 1e12, 0);
    assert.equal(c.size, 10);
    assert.ok(c.has("id-999", 0));
    assert.equal(c.has("id-989", 0), false);
  });

  it("drops expired ids as claims go on, so memory follows the window", () => {
    const c = new ReplayCache(1_000_000);
    // 10,000 claims, each remembered for 100 ms of simulated time, one per ms.
    for (let t = 0; t < 10_000; t++) c.claim(`id-${t}`, t + 100, t);
    assert.ok(c.size <= 100 + 2 * 64, `size ${c.size}`);
    assert.ok(c.has("id-9999", 9_999));
  });

  it("at its bound keeps exactly the newest ids through many claims", () => {
    const c = new ReplayCache(50_000);
    for (let i = 0; i < 250_000; i++) c.claim(`id-${i}`, 1e15, 0);
    assert.equal(c.size, 50_000);
    assert.ok(c.has("id-200000", 0));
    assert.equal(c.has("id-199999", 0), false);
  });

  it("a released and re-claimed id is dropped at its latest claim, not its first", () => {
    const c = new ReplayCache(3);
    c.claim("a", 1e15, 0);
    c.release("a");
    c.claim("b", 1e15, 0);
    c.claim("a", 1e15 + 1, 0);
    c.claim("c", 1e15, 0); // drops the first "a" ring entry: "a" was claimed again, so it stays
    assert.ok(c.has("a", 0));
    assert.equal(c.claim("a", 1e15, 0), false);
  });

  it("a re-claim with the very same expiry is told from the earlier claim", () => {
    const c = new ReplayCache(3);
    c.claim("a", 1e15, 0);
    c.release("a");
    c.claim("a", 1e15, 0); // same expiry as the first "a" ring entry
    c.claim("b", 1e15, 0);
    c.claim("c", 1e15, 0); // drops the first "a" entry: the latest claim stays
    assert.ok(c.has("a", 0));
    assert.deepEqual(liveIds(c, ["a", "b", "c"], 0).map(([id]) => id), ["a", "b", "c"]);
  });

  it("answers as a plain model does through random claims, releases, growth and expiry", () => {
    // The model: every claim in order, and per id the number of its latest claim.
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (const max of [5, 16, 40, 100]) {
      const c = new ReplayCache(max);
      const ring: { id: string; exp: number; n: number }[] = [];
      const latest = new Map<string, number>();
      let claims = 0;
      const dropOldest = () => {
        const e = ring.shift()!;
        if (latest.get(e.id) === e.n) latest.delete(e.id);
      };
      const modelHas = (id: string, now: number) => {
        const n = latest.get(id);
        return n !== undefined && ring.find((e) => e.n === n)!.exp > now;
      };
      let now = 0;
      for (let step = 0; step < 20_000; step++) {
        now += rnd(3);
        const id = `id-${rnd(60)}`;
        if (rnd(10) === 0) {
          c.release(id);
          latest.delete(id);
        } else {
          const exp = now + 1 + rnd(80);
          const want = !modelHas(id, now);
          if (want) {
            if (ring.length >= max) dropOldest();
            ring.push({ id, exp, n: ++claims });
            latest.set(id, claims);
            for (let i = 0; i < 2 && ring.length > 0 && ring[0]!.exp <= now; i++) dropOldest();
          }
          assert.equal(c.claim(id, exp, now), want, `step ${step}: claim ${id}`);
        }
        assert.equal(c.size, latest.size, `step ${step}: size`);
        if (step % 97 === 0) for (let k = 0; k < 60; k++) assert.equal(c.has(`id-${k}`, now), modelHas(`id-${k}`, now), `step ${step}: has id-${k}`);
      }
    }
  });

  it("live() gives the unexpired claims, oldest first", () => {
    const c = new ReplayCache(100);
    c.claim("old", 10, 0);
    c.claim("new", 5_000, 0);
    c.claim("v1", Number.POSITIVE_INFINITY, 0);
    assert.deepEqual(liveIds(c, ["old", "new", "v1"], 100), [["new", 5_000], ["v1", Number.POSITIVE_INFINITY]]);
  });

  it("holds fingerprints, not ids: 1,000,000 ids, and no false positive among 200,000 others", () => {
    const c = new ReplayCache(1_000_000, [0xdeadbeef, 0x0badf00d]);
    for (let i = 0; i < 1_000_000; i++) c.claim(`https://a.example\n${i}`, Number.POSITIVE_INFINITY, 0);
    assert.equal(c.size, 1_000_000);
    let hits = 0;
    for (let i = 1_000_000; i < 1_200_000; i++) if (c.has(`https://a.example\n${i}`, 0)) hits++;
    assert.equal(hits, 0);
    assert.ok(c.has("https://a.example\n0", 0) && c.has("https://a.example\n999999", 0));
  });

  it("fingerprints depend on the seeds, and the same seeds give the same fingerprints", () => {
    const a = new ReplayCache(10, [1, 2]);
    const b = new ReplayCache(10, [1, 2]);
    const c = new ReplayCache(10, [3, 4]);
    const print = (r: ReplayCache, id: string) => ({ ...r.fingerprint(id) });
    assert.deepEqual(print(a, "peer\nx"), print(b, "peer\nx"));
    assert.notDeepEqual(print(a, "peer\nx"), print(c, "peer\nx"));
    assert.notDeepEqual(print(a, "peer\nx"), print(a, "peer\ny"));
    assert.notDeepEqual(print(a, "ab"), print(a, "ba"));
    assert.notDeepEqual(print(a, "a"), print(a, "a\u0000"), "the length is part of it");
  });
});

describe("ReplayJournal", () => {
  const dir = mkdtempSync(join(tmpdir(), "replay-journal-"));
  const future = Date.now() + 3_600_000;

  it("a crash without a clean close forgets no flushed claim; releases and expiries are honoured", () => {
    const file = join(dir, "a.journal");
    const c = new ReplayCache(1_000);
    const j = new ReplayJournal(file, c, silentLogger);
    for (const [id, exp] of [["keep", future], ["gone", Date.now() - 1], ["inf", Number.POSITIVE_INFINITY], ["released", future], ['odd "id"\n', future]] as const) {
      c.claim(id, exp);
      j.record(id, exp);
    }
    c.release("released");
    j.record("released", 1);
    j.flush();
    // No close(): the process died. A torn last line is what a crash mid-write leaves.
    appendFileSync(file, '123 "torn');
    const d = new ReplayCache(1_000);
    new ReplayJournal(file, d, silentLogger).close();
    assert.ok(d.has("keep") && d.has("inf") && d.has('odd "id"\n'));
    assert.ok(!d.has("gone") && !d.has("released"));
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it("compacts once it has grown by the memory's size", () => {
    const file = join(dir, "b.journal");
    const c = new ReplayCache(1_000);
    const j = new ReplayJournal(file, c, silentLogger);
    for (let i = 0; i < 5_000; i++) {
      c.claim(`id-${i}`, future);
      j.record(`id-${i}`, future);
      j.flush();
    }
    const lines = readFileSync(file, "utf8").split("\n").length - 1;
    assert.ok(lines <= 2_001, `${lines} lines`);
    const d = new ReplayCache(1_000);
    new ReplayJournal(file, d, silentLogger);
    assert.ok(d.has("id-4999") && !d.has("id-0"));
  });

  it("writes fingerprints under a first line with its seeds; the seeds survive a restart", () => {
    const file = join(dir, "f.journal");
    const c = new ReplayCache(100);
    const j = new ReplayJournal(file, c, silentLogger);
    // Ids with letters that hex never holds: the check below cannot be met by chance.
    c.claim("id-one", future);
    j.record("id-one", future);
    c.claim("id-two", Number.POSITIVE_INFINITY);
    j.record("id-two", Number.POSITIVE_INFINITY);
    j.close();
    const lines = readFileSync(file, "utf8").trim().split("\n");
    assert.match(lines[0]!, /^pilox-mesh replay 2 [0-9a-f]{8} [0-9a-f]{8}$/);
    assert.match(lines[1]!, /^\d+ [0-9a-f]{16}$/);
    assert.match(lines[2]!, /^inf [0-9a-f]{16}$/);
    assert.ok(!/one|two/.test(readFileSync(file, "utf8")), "no id is written");
    const d = new ReplayCache(100);
    new ReplayJournal(file, d, silentLogger);
    assert.deepEqual(d.seeds, c.seeds);
    assert.ok(d.has("id-one") && d.has("id-two") && !d.has("id-three"));
  });

  it("reads a journal of the earlier format (ids) once and rewrites it in fingerprints", () => {
    const file = join(dir, "old.journal");
    // A non-ASCII id, a line across the 1 MiB read boundary, a released id, and a torn last line.
    let text = `${future} ${JSON.stringify("événement-1")}\n${future} "released"\n1 "released"\n`;
    for (let i = 0; text.length < (1 << 20) + 10_000; i++) text += `inf ${JSON.stringify(`fill-${i}`)}\n`;
    text += `${future} "last"\n${future} "to`;
    writeFileSync(file, text);
    const c = new ReplayCache(1_000_000);
    new ReplayJournal(file, c, silentLogger);
    assert.ok(c.has("événement-1") && c.has("fill-0") && c.has("last"));
    assert.ok(!c.has("released") && !c.has("to"));
    assert.match(readFileSync(file, "utf8").split("\n")[0]!, /^pilox-mesh replay 2 /, "rewritten in the current format");
    const d = new ReplayCache(1_000_000);
    new ReplayJournal(file, d, silentLogger);
    assert.equal(d.size, c.size);
    assert.ok(d.has("événement-1") && d.has("last") && !d.has("released"));
  });

  it("imports the JSON snapshot of earlier versions once", () => {
    const legacy = join(dir, "replay.json");
    writeFileSync(legacy, JSON.stringify([["old-v", future], ["old-inf", 0]]));
    const c = new ReplayCache(100);
    new ReplayJournal(join(dir, "c.journal"), c, silentLogger, legacy).close();
    assert.ok(c.has("old-v") && c.has("old-inf"));
    assert.ok(!existsSync(legacy));
  });
});
