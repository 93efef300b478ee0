/**
 * The one bearer-token check (agent API, /metrics, the registry's writes, the bridge's
 * `POST /v1/publish`): the exact `Bearer ` prefix, then a constant-time comparison of SHA-256
 * digests of both sides, so neither the token's length nor its content leaks through timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** Compares digests so neither length nor content leaks through timing. */
export function tokenMatches(presented: string | Buffer, expected: Buffer): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header (printable ASCII, at most 1 KiB), if it is one. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(header ?? "");
  return m ? m[1] : undefined;
}

/** True when `header` carries exactly `expected` as a bearer token. */
export function bearerMatches(header: string | undefined, expected: Buffer | undefined): boolean {
  const t = bearerToken(header);
  return expected !== undefined && t !== undefined && tokenMatches(t, expected);
}
