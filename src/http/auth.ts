/** Bearer-token middleware for the agent API on TCP and for /metrics (the check: secrets/bearer.ts). */
import type { MiddlewareHandler } from "hono";
import { bearerMatches } from "../secrets/index.ts";
import { jsonError } from "./errors.ts";

/** `token()` is read per request so a reload that changes the token file takes effect. */
export function bearerAuth(token: () => Buffer | undefined): MiddlewareHandler {
  return async (c, next) => {
    const expected = token();
    if (!expected) return jsonError(c, 503, "not_configured", "no token is configured for this listener");
    if (!bearerMatches(c.req.header("authorization"), expected)) {
      c.header("WWW-Authenticate", 'Bearer realm="pilox-mesh"');
      return jsonError(c, 401, "unauthorized", "a valid bearer token is required");
    }
    await next();
  };
}
