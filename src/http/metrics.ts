/**
 * Request counts and latency per listener, route pattern (never the raw path: label values
 * stay bounded whatever clients send), method and status.
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { HttpMetrics } from "../metrics/index.ts";

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

export function httpMetrics(m: HttpMetrics | undefined, listener: string): MiddlewareHandler {
  if (!m) return async (_c, next) => next();
  return async (c, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      const p = routePath(c, -1);
      const route = p === "" || p === "*" || p === "/*" ? "unmatched" : p;
      const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "other";
      m.requests.inc({ listener, route, method, status: String(c.res.status) });
      m.duration.observe({ listener, route, method }, (performance.now() - start) / 1000);
    }
  };
}
