/**
 * Federation tokens (wire-v1 §2): Ed25519 JWTs. We emit exactly the Pilox claims in their order
 * (iss, sub, jti, iat, exp, aud), with a kid header and, when a request body is bound, a
 * `body_sha256` claim after them. Verification is strict where the reference is weak: only
 * EdDSA, a configured issuer, a lifetime cap, a bounded issue age, and a jti seen once.
 * Signing goes through jose; verification calls node:crypto directly (the hot path of every
 * inbound request: measured in bench/federation.verify.ts).
 */
import { createHash, createHmac, randomUUID, timingSafeEqual, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { CompactSign } from "jose";
import type { Ed25519Key } from "../identity/index.ts";
import { normalizeOrigin } from "./origin.ts";
import { ReplayStoreUnavailableError, type TokenReplayStore } from "./replay-store.ts";

export const TOKEN_SUB = "federation-peer";
export const MAX_TOKEN_CHARS = 8192;

export interface TokenClaims {
  iss: string;
  sub: string;
  jti: string;
  iat: number;
  exp: number;
  aud: string;
  body_sha256?: string;
  [k: string]: unknown;
}

export function bodySha256(body: Uint8Array | string): string {
  return createHash("sha256").update(body).digest("base64url");
}

export interface MintOptions {
  key: Ed25519Key;
  iss: string;
  aud: string;
  ttlSeconds: number;
  now?: number;
  jti?: string;
  /** Binds the token to this request body. */
  body?: Uint8Array | string;
  /** Include the kid header (default true; the spec vector has none). */
  kid?: boolean;
}

export async function mintToken(o: MintOptions): Promise<string> {
  const iat = Math.floor((o.now ?? Date.now()) / 1000);
  const claims: TokenClaims = { iss: o.iss, sub: TOKEN_SUB, jti: o.jti ?? randomUUID(), iat, exp: iat + o.ttlSeconds, aud: o.aud };
  if (o.body !== undefined) claims.body_sha256 = bodySha256(o.body);
  const header = o.kid === false ? { alg: "EdDSA", typ: "JWT" } : { alg: "EdDSA", typ: "JWT", kid: o.key.kid };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader(header).sign(o.key.privateKey);
}

export interface PeerKeys {
  origin: string;
  keys: { kid?: string; publicKey: KeyObject }[];
}

export interface VerifyPolicy {
  /** Our own origin: the token's aud. */
  audience: string;
  /** Configured peers by normalised origin. */
  peers: ReadonlyMap<string, PeerKeys>;
  leewaySeconds: number;
  maxLifetimeSeconds: number;
  /** A token issued longer ago than this is refused even if unexpired (default: max lifetime). */
  maxIssueAgeSeconds?: number;
  now?: number;
  replay: TokenReplayStore;
  /** When the request body is bound, its bytes. */
  body?: Uint8Array | string;
  /** Require the body binding (the relay does). */
  requireBodyBinding?: boolean;
  /**
   * The reference's shared-secret mode, only when the operator enabled it: HS256 with
   * iss = "pilox-mesh-federation". It proves knowledge of the secret, not a peer's identity.
   */
  hs256Secret?: Buffer;
}

export const HS256_ISSUER = "pilox-mesh-federation";

export const TOKEN_REJECT_REASONS = [
  "malformed",
  "alg_not_allowed",
  "unknown_issuer",
  "bad_signature",
  "wrong_audience",
  "wrong_subject",
  "missing_jti",
  "expired",
  "not_yet_valid",
  "issued_in_future",
  "lifetime_too_long",
  "issued_too_long_ago",
  "body_mismatch",
  "replayed",
  "store_unavailable",
] as const;
export type TokenRejectReason = (typeof TOKEN_REJECT_REASONS)[number];

export type TokenResult = { ok: true; claims: TokenClaims; peer: string; kid?: string } | { ok: false; reason: TokenRejectReason; detail: string };

const no = (reason: TokenRejectReason, detail: string): TokenResult => ({ ok: false, reason, detail });
const B64URL = /^[A-Za-z0-9_-]+$/;

function decodePart(p: string): Record<string, unknown> | undefined {
  if (!B64URL.test(p)) return undefined;
  try {
    const v = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x);

export async function verifyToken(token: string, p: VerifyPolicy): Promise<TokenResult> {
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_CHARS) return no("malformed", "missing or longer than 8192 characters");
  const parts = token.split(".");
  if (parts.length !== 3) return no("malformed", "not a compact JWS");
  const [h, c, s] = parts as [string, string, string];
  const header = decodePart(h);
  const claims = decodePart(c);
  if (!header || !claims) return no("malformed", "undecodable header or claims");
  const hs = header["alg"] === "HS256" && p.hs256Secret !== undefined;
  // Ed25519 only, unless the operator enabled HS256; `none` and everything else are refused.
  if (header["alg"] !== "EdDSA" && header["alg"] !== "Ed25519" && !hs) return no("alg_not_allowed", `alg ${JSON.stringify(header["alg"])}`);
  if (!B64URL.test(s)) return no("malformed", "undecodable signature");
  if (header["crit"] !== undefined) return no("malformed", "crit headers are not supported");
  if (typeof claims["iss"] !== "string") return no("malformed", "iss missing");
  if (hs) {
    if (claims["iss"] !== HS256_ISSUER) return no("unknown_issuer", `HS256 tokens are issued by ${HS256_ISSUER}`);
    const mac = createHmac("sha256", p.hs256Secret!).update(`${h}.${c}`).digest();
    const got = Buffer.from(s, "base64url");
    if (got.length !== mac.length || !timingSafeEqual(got, mac)) return no("bad_signature", "HS256 MAC mismatch");
    return checkClaims(claims, HS256_ISSUER, p, undefined);
  }
  const iss = normalizeOrigin(claims["iss"]);
  const peer = iss ? p.peers.get(iss) : undefined;
  if (!iss || !peer) return no("unknown_issuer", `issuer ${JSON.stringify(claims["iss"])} is not a configured peer`);
  const sig = Buffer.from(s, "base64url");
  if (sig.length !== 64) return no("bad_signature", "an Ed25519 signature is 64 bytes");
  const input = Buffer.from(`${h}.${c}`);
  const kid = typeof header["kid"] === "string" ? header["kid"] : undefined;
  // A kid that names one of the peer's keys picks it (one verification). The reference ignores
  // kid, so a compatible peer may send any value: one we do not know, or none, means each of
  // the peer's keys (a handful) is tried.
  const named = kid ? peer.keys.filter((k) => k.kid === kid) : [];
  const candidates = named.length ? named : peer.keys;
  const used = candidates.find((k) => cryptoVerify(null, input, k.publicKey, sig));
  if (!used) return no("bad_signature", named.length ? `the key of ${iss} with kid ${kid} does not verify it` : `no key of ${iss} verifies it`);
  return checkClaims(claims, iss, p, used.kid);
}

/** Claims, only after the signature holds (no oracle on unsigned content). */
async function checkClaims(claims: Record<string, unknown>, iss: string, p: VerifyPolicy, usedKid: string | undefined): Promise<TokenResult> {
  const aud = typeof claims["aud"] === "string" ? normalizeOrigin(claims["aud"]) : undefined;
  if (!aud || aud !== normalizeOrigin(p.audience)) return no("wrong_audience", `aud ${JSON.stringify(claims["aud"])}`);
  if (claims["sub"] !== TOKEN_SUB) return no("wrong_subject", `sub ${JSON.stringify(claims["sub"])}`);
  const jti = claims["jti"];
  if (typeof jti !== "string" || jti.length === 0 || jti.length > 128) return no("missing_jti", "jti must be 1-128 characters");
  const { iat, exp, nbf } = claims as { iat?: unknown; exp?: unknown; nbf?: unknown };
  if (!isInt(iat) || !isInt(exp)) return no("malformed", "iat and exp must be integers");
  if (nbf !== undefined && !isInt(nbf)) return no("malformed", "nbf must be an integer");
  const now = Math.floor((p.now ?? Date.now()) / 1000);
  const leeway = p.leewaySeconds;
  if (exp - iat > p.maxLifetimeSeconds) return no("lifetime_too_long", `lifetime ${exp - iat} s exceeds ${p.maxLifetimeSeconds} s`);
  if (exp <= iat) return no("malformed", "exp is not after iat");
  if (now > exp + leeway) return no("expired", `expired ${now - exp} s ago`);
  if (iat > now + leeway) return no("issued_in_future", `iat ${iat - now} s in the future`);
  if (isInt(nbf) && nbf > now + leeway) return no("not_yet_valid", `nbf ${nbf - now} s in the future`);
  const maxAge = p.maxIssueAgeSeconds ?? p.maxLifetimeSeconds;
  if (now - iat > maxAge + leeway) return no("issued_too_long_ago", `issued ${now - iat} s ago`);
  if (p.body !== undefined || p.requireBodyBinding) {
    const bound = claims["body_sha256"];
    if (typeof bound !== "string" || p.body === undefined || bound !== bodySha256(p.body)) return no("body_mismatch", "the token does not bind this request body");
  }
  // Remember the jti for as long as the token could still pass the checks above.
  const ttl = exp + leeway - now + 1;
  try {
    if (!(await p.replay.claimOnce(iss, jti, ttl))) return no("replayed", `jti ${jti} already used by ${iss}`);
  } catch (err) {
    if (err instanceof ReplayStoreUnavailableError) return no("store_unavailable", err.message);
    throw err;
  }
  const out: TokenResult = { ok: true, claims: claims as TokenClaims, peer: iss };
  if (usedKid) out.kid = usedKid;
  return out;
}
