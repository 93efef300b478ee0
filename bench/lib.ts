/** Shared pieces of the benchmarks: one JSON line per figure, percentiles, a payload. */
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
