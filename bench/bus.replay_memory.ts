/**
 * bus.replay_memory: the replay memory (bus/replay.ts) with its journal, filled to 1,000,000
 * claims, the relay's bound for the (peer, event id) pairs it republished (the bus's own default
 * is 100,000). Baseline, in the same run: the design it replaced, ids as strings in a Map with
 * a ring of them and `<expiry> <JSON id>` journal lines (below, as it was). Figures: bytes of heap
 * and array buffers a claim after a full GC, and ns a claim for has + claim + record, with a
 * journal write every 256 claims (the relay writes once a batch, the bus once a delivery tick).
 */
import { randomUUID } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ReplayCache, ReplayJournal } from "../src/bus/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { report } from "./lib.ts";

const CLAIMS = Number(process.env["BENCH_CLAIMS"] ?? 1_000_000);
const BATCH = 256;
const ORIGIN = "https://mesh-peer-a.example.org:8443";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const used = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

interface Memory {
  has(key: string): boolean;
  claim(key: string): void;
  flush(): void;
  close(): void;
}

/** The earlier design: the ids themselves, in a Map (id → ring slot) and a ring. */
class StringMemory implements Memory {
  readonly #seen = new Map<string, number>();
  readonly #ids: (string | undefined)[];
  readonly #exps: Float64Array;
  #head = 0;
  #count = 0;
  #pending = "";
  readonly #fd: number;
  constructor(readonly max: number, file: string) {
    this.#ids = new Array(max);
    this.#exps = new Float64Array(max);
    this.#fd = openSync(file, "a", 0o600);
  }
  has(id: string): boolean {
    const at = this.#seen.get(id);
    return at !== undefined && this.#exps[at]! > 0;
  }
  claim(id: string): void {
    if (this.#count === this.max) {
      const old = this.#ids[this.#head]!;
      if (this.#seen.get(old) === this.#head) this.#seen.delete(old);
      this.#head = (this.#head + 1) % this.max;
      this.#count--;
    }
    const at = (this.#head + this.#count++) % this.max;
    this.#ids[at] = id;
    this.#exps[at] = Number.POSITIVE_INFINITY;
    this.#seen.set(id, at);
    this.#pending += `inf ${JSON.stringify(id)}\n`;
  }
  flush(): void {
    writeSync(this.#fd, this.#pending);
    this.#pending = "";
  }
  close(): void {
    closeSync(this.#fd);
  }
}

function measure(make: (dir: string) => Memory, ids: readonly string[]): { bytes: number; ns: number } {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-replay-"));
  try {
    const before = used();
    const m = make(dir);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ids.length; i++) {
      // Made per message, as the relay makes its keys: only what the memory keeps of it stays.
      const key = `${ORIGIN}\n${ids[i]!}`;
      if (!m.has(key)) m.claim(key);
      if (i % BATCH === BATCH - 1) m.flush();
    }
    m.flush();
    const ns = Number(process.hrtime.bigint() - t0) / ids.length;
    const bytes = (used() - before) / ids.length;
    m.close();
    return { bytes, ns };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const ids = Array.from({ length: CLAIMS }, () => randomUUID());
  const strings = (dir: string): Memory => new StringMemory(CLAIMS, join(dir, "strings.journal"));
  const ours = (dir: string): Memory => {
    const cache = new ReplayCache(CLAIMS);
    const journal = new ReplayJournal(join(dir, "replay.journal"), cache, silentLogger);
    return {
      has: (k) => cache.has(k),
      claim: (k) => {
        cache.claim(k, Number.POSITIVE_INFINITY);
        journal.record(k, Number.POSITIVE_INFINITY);
      },
      flush: () => journal.flush(),
      close: () => journal.close(),
    };
  };
  const base = measure(strings, ids);
  const value = measure(ours, ids);
  report("bus.replay_memory.bytes_per_claim", "bytes", base.bytes, value.bytes, { claims: CLAIMS, baseline_is: "ids as strings in a Map and a ring (the design before fingerprints)" });
  report("bus.replay_memory.ns_per_claim", "ns", base.ns, value.ns, { claims: CLAIMS, work: "has + claim + journal record, a write every 256" });
}
