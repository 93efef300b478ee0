/** What a site's local subscriber saw on a channel: each message's event id → how many times, in what order, from where. */
import assert from "node:assert/strict";
import type { Delivery } from "../../src/bus/index.ts";

export class Deliveries {
  readonly seen = new Map<string, number>();
  /** payload.i of each delivery, in delivery order. */
  readonly order: number[] = [];
  readonly origins = new Set<string>();

  /** The handler to subscribe with. */
  readonly record = (d: Delivery): void => {
    this.seen.set(d.eventId, (this.seen.get(d.eventId) ?? 0) + 1);
    this.order.push((d.message["payload"] as { i: number }).i);
    if (d.ext?.origin) this.origins.add(d.ext.origin);
  };

  received(): number {
    let n = 0;
    for (const c of this.seen.values()) n += c;
    return n;
  }

  clear(): void {
    this.seen.clear();
    this.order.length = 0;
  }

  assertExactlyOnce(expected: number): void {
    const dup = [...this.seen.values()].filter((c) => c > 1).length;
    assert.equal(dup, 0, `${dup} messages delivered more than once`);
    assert.equal(this.seen.size, expected, `expected ${expected} distinct messages, got ${this.seen.size}`);
  }
}
