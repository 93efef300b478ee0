/** Shared pieces of the benchmarks: one JSON line per figure, percentiles, a payload, a bus. */
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
