/** Shared pieces of the benchmarks: one JSON line per figure, percentiles, a payload, a bus. */
import { readFileSync } from "node:fs";
import { connectBus, type ChannelOptions, type MeshBus } from "../src/index.ts";

export interface Figure {
  bench: string;
  unit: string;
  baseline: number;
  value: number;
  ratio: number;
  [extra: string]: unknown;
}

export function report(bench: string, unit: string, baseline: number, value: number, extra: Record<string, unknown> = {}): void {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const f: Figure = { bench, unit, baseline: round(baseline), value: round(value), ratio: round(baseline === 0 ? 0 : value / baseline), ...extra };
  process.stdout.write(JSON.stringify(f) + "\n");
}

/** A figure from interleaved rounds: the best round of each side, with the medians' ratio. */
export function reportRounds(bench: string, unit: string, r: { base: number[]; mine: number[] }, extra: Record<string, unknown> = {}): void {
  report(bench, unit, Math.max(...r.base), Math.max(...r.mine), { statistic: "best round", median_ratio: Math.round((median(r.mine) / median(r.base)) * 1000) / 1000, ...extra });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A typical agent message (~250 bytes as JSON). */
export function payload(n: number): Record<string, unknown> {
  return {
    type: "agent.task",
    payload: { agentId: `agent-${n % 50}`, task: "summarise", args: { doc: `doc-${n}`, maxTokens: 512, lang: "en" } },
    timestamp: "2026-11-26T12:00:00.000Z",
  };
}

export const BENCH_SECRET = Buffer.from("bench-bus-secret-0123456789abcdef0123");

/** Runs `fire(i)` for i < n with at most `window` unresolved at once. */
export async function windowed(n: number, window: number, fire: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fire(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, worker));
}

/**
 * A started MeshBus from the library's connectBus: the defaults of the appliance's
 * configuration (replay memory, freshness window, size limits), on Redis at `url` or
 * embedded without one.
 */
export function benchBus(url?: string, channels: Record<string, ChannelOptions> = {}): Promise<MeshBus> {
  return connectBus({
    ...(url ? { redisUrl: url } : {}),
    keys: [{ id: "k1", secret: BENCH_SECRET }],
    channels,
    producer: "bench",
    consumerGroup: "bench",
    consumerName: "bench",
    spoolMaxBytes: 1 << 20,
  });
}

/** Waits until every bus's backend is connected. */
export async function waitReady(...buses: MeshBus[]): Promise<void> {
  while (!buses.every((b) => b.backend.isReady())) await new Promise((r) => setTimeout(r, 10));
}

/**
 * Interleaved rounds of a baseline and our side (alternating which goes first, so drift on a
 * shared machine hits both alike); returns every round's figure of each side.
 */
export async function interleaved(rounds: number, baseline: () => Promise<number>, ours: () => Promise<number>): Promise<{ base: number[]; mine: number[] }> {
  const base: number[] = [];
  const mine: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const b = () => baseline().then((x) => void base.push(x));
    const m = () => ours().then((x) => void mine.push(x));
    if (r % 2 === 0) await b().then(m);
    else await m().then(b);
  }
  return { base, mine };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); null when gone. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on every Linux build that ships (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

/**
 * CPU time each named process spends over a phase, in µs per message: where a path's CPU goes
 * when the machine, not one process, is the limit.
 */
export function cpuMeter(procs: Record<string, () => number | undefined>): { stop(messages: number): Record<string, number> } {
  const at = (): Record<string, number | null> => Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, pid() === undefined ? null : cpuSeconds(pid()!)]));
  const before = at();
  return {
    stop: (messages) => {
      const after = at();
      const out: Record<string, number> = {};
      let total = 0;
      for (const k of Object.keys(procs)) {
        const a = before[k];
        const b = after[k];
        if (a == null || b == null) continue;
        out[k] = Math.round(((b - a) * 1e6) / messages);
        total += out[k]!;
      }
      out["total"] = total;
      return out;
    },
  };
}

/** cpuMeter figures summed over several runs, as µs per message over all of them. */
export class CpuTotals {
  #us: Record<string, number> = {};
  #messages = 0;

  add(perMessage: Record<string, number>, messages: number): void {
    for (const [k, v] of Object.entries(perMessage)) this.#us[k] = (this.#us[k] ?? 0) + v * messages;
    this.#messages += messages;
  }

  perMessage(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.#us).map(([k, v]) => [k, Math.round(v / Math.max(1, this.#messages))]));
  }
}
