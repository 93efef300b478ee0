/**
 * A signed change-feed page: who served it, when, for which cursor range, over which changes.
 * A syncing registry checks it against the peer's pinned keys and the clock, so a page signed
 * by another key, or replayed later, is refused without downloading the whole catalog.
 */
import { canonicalize } from "../canon/index.ts";
import { publicKeyFromHex, signHex, verifyHex, type Ed25519Key } from "../identity/index.ts";
import { digestOf } from "./catalog.ts";

export const FEED_PROOF = "pilox-registry-feed-ed25519-v1";

export interface FeedProof {
  type: typeof FEED_PROOF;
  origin: string;
  issuedAt: string;
  since: number;
  next: number;
  digest: string;
  publicKeyHex: string;
  sigHex: string;
}

const signedString = (p: Omit<FeedProof, "sigHex">) =>
  canonicalize({ type: p.type, origin: p.origin, issuedAt: p.issuedAt, since: p.since, next: p.next, digest: p.digest, publicKeyHex: p.publicKeyHex });

export function signFeed(key: Ed25519Key, origin: string, since: number, next: number, changes: unknown[]): FeedProof {
  const body = { type: FEED_PROOF, origin, issuedAt: new Date().toISOString(), since, next, digest: digestOf(changes), publicKeyHex: key.publicKeyHex } as const;
  return { ...body, sigHex: signHex(key, signedString(body)) };
}

/** undefined when the page is authentic and fresh, else the reason. */
export function feedRefusal(page: { changes: unknown[]; next: number; feedProof?: unknown }, o: { since: number; pinned: string[]; maxAgeMs: number; now?: number }): string | undefined {
  const p = page.feedProof as Partial<FeedProof> | undefined;
  if (!p || p.type !== FEED_PROOF || typeof p.publicKeyHex !== "string" || typeof p.sigHex !== "string" || typeof p.issuedAt !== "string") return "feed_unsigned";
  if (!o.pinned.includes(p.publicKeyHex.toLowerCase())) return "feed_key_not_pinned";
  if (!/^[0-9a-fA-F]{128}$/.test(p.sigHex) || !/^[0-9a-f]{64}$/.test(p.publicKeyHex)) return "feed_malformed";
  if (!verifyHex(publicKeyFromHex(p.publicKeyHex), signedString(p as FeedProof), p.sigHex)) return "feed_bad_signature";
  if (p.since !== o.since || p.next !== page.next || p.digest !== digestOf(page.changes)) return "feed_mismatch";
  const now = o.now ?? Date.now();
  const at = Date.parse(p.issuedAt);
  if (!(at >= now - o.maxAgeMs) || at > now + 60_000) return "feed_stale";
  return undefined;
}
