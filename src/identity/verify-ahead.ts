/**
 * Ed25519 checks made ahead, on worker threads, for bulk work on more than one core (a registry
 * sync verifies thousands of records). Only good results are remembered (bounded, oldest out),
 * keyed by key, signature and the signed text; `verifyHexOf` answers from them or verifies
 * on the spot, so a check never asked ahead, or asked ahead in vain, costs what it did.
 *
 * Which checks a piece of work makes is learned by running its pure verification functions
 * under `collectChecks`, where every check is noted and taken as good: the list is then exactly
 * what the real run will ask, with no second copy of the rules that decide it.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { publicKeyFromHex, verifyHex } from "./ed25519.ts";

export type Check = readonly [publicKeyHex: string, data: string, sigHex: string];

const good = new Set<string>();
const MAX_GOOD = 32_768;
let collecting: Check[] | undefined;

const keyOf = (c: Check) => `${c[0]}\n${c[2]}\n${c[1]}`;

/** verifyHex by the key's hex, answered from the checks made ahead when one matches. */
export function verifyHexOf(publicKeyHex: string, data: string, sigHex: string): boolean {
  if (collecting) {
    collecting.push([publicKeyHex, data, sigHex]);
    return true;
  }
  if (good.size > 0 && good.has(keyOf([publicKeyHex, data, sigHex]))) return true;
  return verifyHex(publicKeyFromHex(publicKeyHex), data, sigHex);
}

/** Was this check verified ahead, and good? (tests) */
export function knownGood(c: Check): boolean {
  return good.has(keyOf(c));
}

/** The checks `f` makes through verifyHexOf, each taken as good while it runs (`f` must be pure). */
export function collectChecks(f: () => void): Check[] {
  const outer = collecting;
  const mine: Check[] = [];
  collecting = mine;
  try {
    f();
  } finally {
    collecting = outer;
  }
  return mine;
}

/** Verifies `checks` on the worker pool and remembers the good ones. Never rejects. */
export async function verifyAhead(checks: readonly Check[]): Promise<void> {
  const fresh = checks.filter((c) => /^[0-9a-fA-F]{64}$/.test(c[0]) && !good.has(keyOf(c)));
  if (fresh.length === 0) return;
  const p = pool();
  if (!p) return;
  const per = Math.ceil(fresh.length / p.length);
  await Promise.all(
    p.map(async (w, i) => {
      const part = fresh.slice(i * per, (i + 1) * per);
      if (part.length === 0) return;
      const ok = await w.run(part);
      if (!ok) return;
      part.forEach((c, j) => {
        if (!ok[j]) return;
        if (good.size >= MAX_GOOD) good.delete(good.values().next().value!);
        good.add(keyOf(c));
      });
    }),
  );
}

const WORKER = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const SPKI = Buffer.from("302a300506032b6570032100", "hex");
const keys = new Map();
parentPort.on("message", ({ id, checks }) => {
  const out = checks.map(([pk, data, sig]) => {
    try {
      let k = keys.get(pk);
      if (!k) {
        if (keys.size > 1024) keys.clear();
        keys.set(pk, (k = createPublicKey({ key: Buffer.concat([SPKI, Buffer.from(pk, "hex")]), format: "der", type: "spki" })));
      }
      return /^[0-9a-fA-F]{128}$/.test(sig) && verify(null, Buffer.from(data), k, Buffer.from(sig, "hex"));
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ id, out });
});
`;

interface PoolWorker {
  run(checks: readonly Check[]): Promise<boolean[] | undefined>;
}

let workers: PoolWorker[] | null | undefined;

/**
 * One worker per core, at most four: during a sync the main thread mostly waits for them (with
 * one fewer, on two cores, it sat idle a sixth of the time). Null where workers cannot start.
 */
function pool(): PoolWorker[] | null {
  if (workers !== undefined) return workers;
  try {
    const n = Math.min(4, availableParallelism());
    workers = Array.from({ length: n }, () => poolWorker());
  } catch {
    workers = null; // a runtime without eval workers: everything is verified on the spot
  }
  return workers;
}

function poolWorker(): PoolWorker {
  const w = new Worker(WORKER, { eval: true });
  let next = 0;
  const waiting = new Map<number, (out: boolean[] | undefined) => void>();
  w.on("message", (m: { id: number; out: boolean[] }) => {
    waiting.get(m.id)?.(m.out);
    waiting.delete(m.id);
    if (waiting.size === 0) w.unref();
  });
  const fail = () => {
    for (const r of waiting.values()) r(undefined);
    waiting.clear();
    workers = null;
  };
  w.on("error", fail);
  w.on("exit", fail);
  // Holds the process up only while it has work (after the listeners: adding one refs it again).
  w.unref();
  return {
    run: (checks) =>
      new Promise((resolve) => {
        const id = next++;
        if (waiting.size === 0) w.ref();
        waiting.set(id, resolve);
        w.postMessage({ id, checks });
      }),
  };
}
