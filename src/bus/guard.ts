/**
 * Where received messages are admitted: authentication (envelope/verify), freshness of the
 * unextended v1 form, then replay by event id. Every refusal is counted by reason and logged
 * at a bounded rate. Nothing a sender writes can make `admit` throw: an inbound callback that
 * threw would take the process down with it.
 */
import type { Logger } from "../log/index.ts";
import type { BusMetrics } from "../metrics/index.ts";
import { verifyWire, type RejectReason, type Verified, type VerifyPolicy } from "./envelope/verify.ts";
import type { KeyRing } from "./keyring.ts";
import { ReplayCache, type ReplayJournal } from "./replay.ts";

/** `key`: what the replay memory holds for this delivery (release and persist it by that). */
export type Admission = { ok: true; value: Verified; expires: number; key: string } | { ok: false; reason: RejectReason; detail: string };

export class InboundGuard {
  readonly replay: ReplayCache;
  #journal: ReplayJournal | undefined;

  constructor(
    private readonly ring: () => KeyRing,
    private readonly policyFor: (channel: string) => VerifyPolicy,
    replayCacheSize: number,
    private readonly metrics: BusMetrics | undefined,
    private readonly log: Logger,
  ) {
    this.replay = new ReplayCache(replayCacheSize);
  }

  /** Claims are also written here (see commit), so a crash forgets no delivered id. */
  persistTo(journal: ReplayJournal): void {
    this.#journal = journal;
  }

  /**
   * `journal: false` leaves the claim out of the journal for the caller to write with
   * `persist` once the message is handled (a durable entry whose handler dies with the process
   * must be redelivered, not taken for a replay). `scope`: whose delivery this is (a durable
   * consumer group): each group takes every message once, so one group's delivery is no replay
   * for another (a channel forwarded to three peers and read by local agents: four groups).
   */
  admit(wireChannel: string, raw: string, refTimeMs?: number, journal = true, scope = ""): Admission {
    return this.#safely(wireChannel, () => this.#admit(wireChannel, raw, refTimeMs, journal, scope, undefined));
  }

  /**
   * For the readers of a durable channel's log that share this guard (its tails): an event id is
   * delivered from the entry that first carried it, to each reader that reaches that entry, and
   * refused from any other entry (a copy appended later). One memory for all of them, not one
   * each: a tail's own memory grew with the channel's traffic, per subscriber.
   */
  admitEntry(wireChannel: string, raw: string, refTimeMs: number, entryId: string): Admission {
    return this.#safely(wireChannel, () => this.#admit(wireChannel, raw, refTimeMs, false, "", entryId));
  }

  #safely(wireChannel: string, admit: () => Admission): Admission {
    try {
      return admit();
    } catch (err) {
      // A verifier bug must not become a crash by PUBLISH: count it like any refusal.
      return this.refuse(wireChannel, "malformed", `verifier error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  #admit(wireChannel: string, raw: string, refTimeMs: number | undefined, journal: boolean, scope: string, entryId: string | undefined): Admission {
    const now = Date.now();
    const ref = refTimeMs ?? now;
    const policy = this.policyFor(wireChannel);
    const r = verifyWire(wireChannel, raw, this.ring(), policy, ref);
    if (!r.ok) return this.refuse(wireChannel, r.reason, r.detail);
    const { eventId, ext } = r.value;
    let sentAt: number;
    if (ext) sentAt = ext.ts;
    else {
      // The v1 form has no send time of ours; its `timestamp` (every Pilox event has one) bounds
      // how long a captured copy stays replayable. Without one there is no bound: refused.
      sentAt = timestampOf(r.value.message["timestamp"]);
      if (Number.isNaN(sentAt)) return this.refuse(wireChannel, "stale", "an unextended message without an ISO-8601 timestamp has no age");
      if (sentAt < ref - policy.maxAgeMs) return this.refuse(wireChannel, "stale", `timestamp ${Math.round((ref - sentAt) / 1000)} s ago`);
      if (sentAt > ref + policy.skewMs) return this.refuse(wireChannel, "clock_skew", `timestamp ${Math.round((sentAt - ref) / 1000)} s in the future`);
    }
    // Remember the id for as long as a replay could still look fresh.
    const expires = Math.max(sentAt, ref) + policy.maxAgeMs + policy.skewMs;
    const key = scope ? `${scope}\u0000${eventId}` : eventId;
    const fresh = entryId === undefined ? this.replay.claim(key, expires, now) : this.replay.claimAt(key, entryId, expires, now);
    if (!fresh) return this.refuse(wireChannel, "replayed", `event ${eventId} already delivered${scope ? ` to ${scope}` : ""}`);
    if (journal) this.#journal?.record(key, expires);
    return { ok: true, value: r.value, expires, key };
  }

  /**
   * The replay claim of a message this process framed and hands to its own subscribers
   * unverified (src/bus/local.ts): a publisher that reuses an event id is refused as a replay,
   * as it would be on the wire.
   */
  claimLocal(wireChannel: string, eventId: string, sentAt: number): boolean {
    const policy = this.policyFor(wireChannel);
    const expires = sentAt + policy.maxAgeMs + policy.skewMs;
    if (!this.replay.claim(eventId, expires)) {
      this.refuse(wireChannel, "replayed", `event ${eventId} already delivered`);
      return false;
    }
    this.#journal?.record(eventId, expires);
    return true;
  }

  /** Writes the ids claimed since the last commit; call before handing admitted messages on. */
  commit(): void {
    this.#journal?.flush();
  }

  /** Journals claims made with `admit(…, false)` (a durable batch, once handled) in one write. */
  persist(claims: readonly (readonly [eventId: string, expires: number])[]): void {
    if (!this.#journal || claims.length === 0) return;
    for (const [id, expires] of claims) this.#journal.record(id, expires);
    this.#journal.flush();
  }

  /** Forgets an id whose delivery failed, so the retry is not taken for a replay. */
  release(eventId: string): void {
    this.replay.release(eventId);
  }

  refuse(wireChannel: string, reason: RejectReason, detail: string): Admission {
    this.metrics?.rejected.inc({ reason });
    this.log.limited(`reject-${reason}`, "warn", "bus message refused", { channel: wireChannel, reason, detail });
    return { ok: false, reason, detail };
  }
}

function timestampOf(x: unknown): number {
  return typeof x === "string" && x.length <= 64 && /^\d{4}-\d\d-\d\dT/.test(x) ? Date.parse(x) : Number.NaN;
}
