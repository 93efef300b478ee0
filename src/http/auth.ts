/** Bearer-token check for the agent API on TCP and for /metrics, in constant time. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { jsonError } from "./errors.ts";

/** Compares digests so neither length nor content leaks through timing. */
export function tokenMatches(presented: string, expected: Buffer): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** `token()` is read per request so a reload that changes the token file takes effect. */
export function bearerAuth(token: () => Buffer | undefined): MiddlewareHandler {
  return async (c, next) => {
    const expected = token();
    if (!expected) return jsonError(c, 503, "not_configured", "no token is configured for this listener");
    const h = c.req.header("authorization") ?? "";
    const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(h);
    if (!m || !tokenMatches(m[1]!, expected)) {
      c.header("WWW-Authenticate", 'Bearer realm="pilox-mesh"');
      return jsonError(c, 401, "unauthorized", "a valid bearer token is required");
    }
    await next();
  };
}
