/** The public listener: liveness, readiness and metrics (discovery joins it later). */
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { MeshBus } from "../bus/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import { jsonError } from "./errors.ts";

export interface PublicApiOptions {
  bus: () => MeshBus;
  metrics: Metrics;
  log: Logger;
}

export function publicApi(o: PublicApiOptions): Hono {
  const app = new Hono();
  app.use("*", secureHeaders());

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const bus = o.bus();
    const r = await bus.ready();
    const spool = bus.spoolStats();
    const body = {
      ready: r.ok,
      checks: { config: { ok: true }, bus: { ok: r.ok, backend: bus.backend.kind, detail: r.detail } },
      spool,
      warnings: r.warnings,
    };
    return c.json(body, r.ok ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    c.header("Content-Type", o.metrics.registry.contentType);
    return c.body(await o.metrics.registry.metrics());
  });

  app.notFound((c) => jsonError(c, 404, "not_found", "no such endpoint"));
  app.onError((err, c) => {
    o.log.error("public API error", { path: c.req.path, error: err.message });
    return jsonError(c, 500, "internal", "internal error");
  });
  return app;
}
