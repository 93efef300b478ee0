/**
 * Where a bus message's time goes: each step of sealing, verifying and admitting timed alone
 * over the same payloads (a loop per step around performance.now, best of three passes, so
 * one GC pause does not land on one step), next to what the raw side does instead
 * (JSON.stringify, JSON.parse). The end-to-end figure minus these steps is the transport:
 * client, socket, server and delivery, which a loop cannot isolate.
 */
import { canonicalizeWithout } from "../src/canon/index.ts";
import { frame, sign, wireOf } from "../src/bus/envelope/seal.ts";
import { extMac } from "../src/bus/envelope/ext.ts";
import { hmacHex } from "../src/bus/envelope/hmac.ts";
import { verifyWire } from "../src/bus/envelope/verify.ts";
import { EXT_FIELD } from "../src/bus/envelope/v1.ts";
import { InboundGuard } from "../src/bus/guard.ts";
import { KeyRing } from "../src/bus/keyring.ts";
import { ReplayCache } from "../src/bus/replay.ts";
import { silentLogger } from "../src/log/index.ts";
import { BENCH_SECRET } from "./lib.ts";

type Msg = Record<string, unknown>;

export interface Costs {
  /** µs per message of each step of ours. */
  ours: Record<string, number>;
  /** µs per message of the raw side's steps. */
  raw: Record<string, number>;
}

const POLICY = { maxBytes: 256 * 1024, maxAgeMs: 300_000, skewMs: 30_000, acceptV1Unextended: false };
const NOT_CORE = new Set(["meshMeta", "meshSig", EXT_FIELD]);

/** µs per item of `step` over `items`, best of three passes. */
function time<T>(items: readonly T[], step: (x: T, i: number) => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let pass = 0; pass < 3; pass++) {
    const t0 = performance.now();
    for (let i = 0; i < items.length; i++) if (step(items[i]!, i)) sink++;
    best = Math.min(best, ((performance.now() - t0) * 1000) / items.length);
  }
  if (sink < 0) throw new Error("unreachable");
  return Math.round(best * 100) / 100;
}

export function messageCosts(channel: string, payloads: readonly Msg[]): Costs {
  const key = { id: "k1", secret: BENCH_SECRET };
  const ring = new KeyRing([key]);
  const framed = payloads.map((p) => frame(channel, p, key.id, {}));
  const sealed = framed.map((f) => sign(f, key));
  const wires = sealed.map(wireOf);
  const texts = payloads.map((p) => JSON.stringify(p));
  const ids = framed.map((f) => f.eventId);

  const ours: Record<string, number> = {
    canonical_json: time(payloads, (p) => canonicalizeWithout(p, NOT_CORE)),
    frame: time(payloads, (p) => frame(channel, p, key.id, {})),
    mac_meshSig: time(framed, (f) => hmacHex(key.secret, f.signed)),
    mac_ext_sig: time(sealed, (s) => extMac(key.secret, s.signed, s.meshSig, s.canonExt!)),
    wire_string: time(sealed, (s) => wireOf(s).length),
    parse: time(wires, (w) => JSON.parse(w)),
    verify: time(wires, (w) => verifyWire(channel, w, ring, POLICY).ok),
  };
  // The replay memory alone, then the whole guard (verify + freshness + replay claim).
  const cache = new ReplayCache(100_000);
  const now = Date.now();
  ours["replay_claim"] = time(ids, (id, i) => cache.claim(`${id}-${i}-${Math.random()}`, now + 300_000, now));
  let pass = 0;
  const guards = [0, 1, 2].map(() => new InboundGuard(() => ring, () => POLICY, 100_000, undefined, silentLogger));
  ours["guard_admit"] = time(wires, (w, i) => {
    if (i === 0) pass++;
    return guards[(pass - 1) % 3]!.admit(channel, w).ok;
  });
  ours["seal_total"] = Math.round((ours["frame"]! + ours["mac_meshSig"]! + ours["mac_ext_sig"]! + ours["wire_string"]!) * 100) / 100;
  const raw = {
    stringify: time(payloads, (p) => JSON.stringify(p).length),
    parse: time(texts, (t) => JSON.parse(t)),
  };
  return { ours, raw };
}
