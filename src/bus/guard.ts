/**
 * Where received messages are admitted: authentication (envelope/verify), then replay by event
 * id. Every refusal is counted by reason and logged at a bounded rate.
 */
import type { Logger } from "../log/index.ts";
import type { BusMetrics } from "../metrics/index.ts";
import { verifyWire, type RejectReason, type Verified, type VerifyPolicy } from "./envelope/verify.ts";
import type { KeyRing } from "./keyring.ts";
import { ReplayCache } from "./replay.ts";

export type Admission = { ok: true; value: Verified } | { ok: false; reason: RejectReason; detail: string };

export class InboundGuard {
  readonly replay: ReplayCache;

  constructor(
    private readonly ring: () => KeyRing,
    private readonly policyFor: (channel: string) => VerifyPolicy,
    replayCacheSize: number,
    private readonly metrics: BusMetrics | undefined,
    private readonly log: Logger,
  ) {
    this.replay = new ReplayCache(replayCacheSize);
  }

  admit(wireChannel: string, raw: string, refTimeMs?: number): Admission {
    const now = Date.now();
    const policy = this.policyFor(wireChannel);
    const r = verifyWire(wireChannel, raw, this.ring(), policy, refTimeMs ?? now);
    if (!r.ok) return this.refuse(wireChannel, r.reason, r.detail);
    const { eventId, ext } = r.value;
    // Remember the id for as long as a replay could still look fresh; an unextended v1
    // message has no send time, so only the cache's size bounds how long it is remembered.
    const expires = ext ? Math.max(ext.ts, refTimeMs ?? now) + policy.maxAgeMs + policy.skewMs : Number.POSITIVE_INFINITY;
    if (!this.replay.claim(eventId, expires, now)) return this.refuse(wireChannel, "replayed", `event ${eventId} already delivered`);
    return r;
  }

  refuse(wireChannel: string, reason: RejectReason, detail: string): Admission {
    this.metrics?.rejected.inc({ reason });
    this.log.limited(`reject-${reason}`, "warn", "bus message refused", { channel: wireChannel, reason, detail });
    return { ok: false, reason, detail };
  }
}
