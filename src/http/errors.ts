/** JSON error bodies with a machine-readable code; never a stack trace. */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export function jsonError(c: Context, status: ContentfulStatusCode, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

/**
 * The reference's error shape, `{"error":"<code>","message":…}`, on the public listener, whose
 * routes (registry, gateway, bridge) stock Pilox clients read as `body.error === "<code>"`.
 */
export function flatError(c: Context, status: ContentfulStatusCode, code: string, message: string) {
  return c.json({ error: code, message }, status);
}
