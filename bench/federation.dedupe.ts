/**
 * federation.dedupe: the relay's memory of republished (peer, event id) pairs at its full size,
 * 1,000,000 pairs. Baseline: the same pairs in a ReplayCache of strings with its journal (what
 * the relay kept before the fingerprints). Ours: DeliveredMemory. Figures: bytes of heap and
 * array buffers a pair after a full GC, and ns a pair for has + add + commit every 256 pairs
 * (the relay commits once per batch).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ReplayCache, ReplayJournal } from "../src/bus/index.ts";
import { DeliveredMemory } from "../src/federation/delivered.ts";
import { silentLogger } from "../src/log/index.ts";
import { report } from "./lib.ts";

const PAIRS = Number(process.env["BENCH_PAIRS"] ?? 1_000_000);
const BATCH = 256;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const used = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

interface Memory {
  has(key: string): boolean;
  add(key: string): void;
  commit(): void;
  close(): void;
}

const ORIGIN = "https://mesh-peer-a.example.org:8443";

function measure(make: (dir: string) => Memory, ids: readonly string[]): { bytes: number; ns: number } {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-dedupe-"));
  try {
    const before = used();
    const m = make(dir);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ids.length; i++) {
      // Made per message, as the relay makes it: only what the memory keeps of it stays.
      const key = `${ORIGIN}\n${ids[i]!}`;
      if (!m.has(key)) m.add(key);
      if (i % BATCH === BATCH - 1) m.commit();
    }
    m.commit();
    const ns = Number(process.hrtime.bigint() - t0) / ids.length;
    const bytes = (used() - before) / ids.length;
    m.close();
    return { bytes, ns };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  // Event ids as a relay batch carries them; the key is the peer's origin, a newline and the id.
  const ids = Array.from({ length: PAIRS }, () => randomUUID());
  const strings = (dir: string): Memory => {
    const cache = new ReplayCache(PAIRS);
    const journal = new ReplayJournal(join(dir, "inbound-delivered.journal"), cache, silentLogger);
    return {
      has: (k) => cache.has(k),
      add: (k) => {
        cache.claim(k, Number.POSITIVE_INFINITY);
        journal.record(k, Number.POSITIVE_INFINITY);
      },
      commit: () => journal.flush(),
      close: () => journal.close(),
    };
  };
  const fingerprints = (dir: string): Memory => new DeliveredMemory(join(dir, "inbound-delivered.v2"), PAIRS, silentLogger, { journal: join(dir, "j"), snapshot: join(dir, "s") });
  const base = measure(strings, ids);
  const ours = measure(fingerprints, ids);
  report("federation.dedupe.bytes_per_pair", "bytes", base.bytes, ours.bytes, { pairs: PAIRS, baseline_is: "ReplayCache of the key strings + its journal" });
  report("federation.dedupe.ns_per_pair", "ns", base.ns, ours.ns, { pairs: PAIRS, work: "has + add, commit every 256" });
}
