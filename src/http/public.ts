/** The public listener: discovery, keys, liveness, readiness and metrics. */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { MeshBus } from "../bus/index.ts";
import { DISCOVERY_PATH, HIVE_DISCOVERY_PATH, KEYS_PATH, PUBLIC_STATUS_PATH } from "../discovery/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import type { BlockList } from "node:net";
import { bearerAuth } from "./auth.ts";
import { clientIp } from "./client-ip.ts";
import { flatError } from "./errors.ts";
import { securityHeaders } from "./security-headers.ts";
import { mountStatusPage, type StatusPageData } from "./status-page.ts";
import { httpMetrics } from "./metrics.ts";

export interface Rendered {
  text: string;
  etag: string;
}

/** What the public listener needs of a role (the daemon's Role fits it). */
export interface PublicRole {
  readonly name: string;
  routes?(): Hono<any>;
  /** Path prefixes whose routes bound their own request bodies (after their own auth). */
  readonly selfLimitedPaths?: readonly string[];
  ready?(): Promise<{ ok: boolean; detail: string }> | { ok: boolean; detail: string };
  /** false: not ready only makes the appliance degraded. */
  readonly readyRequired?: boolean;
  onScrape?(): Promise<void> | void;
}

export interface PublicApiOptions {
  bus: () => MeshBus;
  metrics: Metrics;
  log: Logger;
  /** The signed discovery document and the JWKS, re-rendered on reload. */
  discovery: () => { document: Rendered; hive: Rendered; keys: Rendered; maxAgeSeconds: number };
  metricsToken: () => Buffer | undefined;
  trustedProxies: () => BlockList;
  /** The public federation status (PUBLIC_STATUS_PATH): no peers, keys or errors. */
  federationStatus: () => unknown;
  /** Runs before /metrics renders (gauges computed on demand). */
  onScrape?: () => void;
  /** The roles: their routes, body bounds, readiness and scrape hooks. */
  roles: () => readonly PublicRole[];
  /** GET / (http.status_page): whether it is on, and what it shows. */
  statusPage?: { enabled: () => boolean; data: () => Promise<StatusPageData> };
  maxBodyBytes: () => number;
}

/** If-None-Match may list several tags or `*`. */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.trim() === "*" || ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

function serveCached(c: Context<{ Variables: { clientIp: string } }>, r: Rendered, maxAge: number) {
  c.header("Cache-Control", `public, max-age=${maxAge}`);
  c.header("Access-Control-Allow-Origin", "*");
  c.header("ETag", r.etag);
  c.header("Vary", "Accept-Encoding");
  if (matches(c.req.header("if-none-match"), r.etag)) return c.body(null, 304);
  c.header("Content-Type", "application/json");
  return c.body(r.text, 200);
}

export function publicApi(o: PublicApiOptions): Hono<{ Variables: { clientIp: string } }> {
  const app = new Hono<{ Variables: { clientIp: string } }>();
  app.use("*", httpMetrics(o.metrics.http, "public"));
  app.use("*", securityHeaders());
  app.use("*", clientIp(o.trustedProxies));
  // Nothing here takes a body; anything larger than the bound is refused before it is read.
  // (GET and HEAD skip the check: Node drops their bodies, and they are the hot path.)
  const tooLarge = (c: Context) => flatError(c, 413, "payload_too_large", "request body too large");
  const selfLimited = o.roles().flatMap((r) => r.selfLimitedPaths ?? []);
  app.use("*", (c, next) =>
    c.req.method === "GET" || c.req.method === "HEAD" || selfLimited.some((p) => c.req.path.startsWith(p)) ? next() : bodyLimit({ maxSize: o.maxBodyBytes(), onError: tooLarge })(c, next),
  );

  app.get(DISCOVERY_PATH, (c) => {
    const d = o.discovery();
    return serveCached(c, d.document, d.maxAgeSeconds);
  });
  // The same descriptor as the `hive-` family's schema has it (Pilox's registry and tools).
  app.get(HIVE_DISCOVERY_PATH, (c) => {
    const d = o.discovery();
    return serveCached(c, d.hive, d.maxAgeSeconds);
  });
  app.get(KEYS_PATH, (c) => {
    const d = o.discovery();
    return serveCached(c, d.keys, d.maxAgeSeconds);
  });
  app.options("/.well-known/*", (c) => {
    c.header("Access-Control-Allow-Origin", "*");
    c.header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    c.header("Access-Control-Allow-Headers", "If-None-Match");
    c.header("Access-Control-Max-Age", "86400");
    return c.body(null, 204);
  });

  app.get(PUBLIC_STATUS_PATH, (c) => {
    c.header("Cache-Control", "no-store");
    c.header("Access-Control-Allow-Origin", "*");
    return c.json(o.federationStatus() as object);
  });

  for (const r of o.roles()) if (r.routes) app.route("/", r.routes());

  if (o.statusPage) {
    const page = o.statusPage;
    mountStatusPage(app, {
      data: page.data,
      // Off: as if absent (404). On: behind the metrics token when one is set.
      auth: async (c, next) => {
        if (!page.enabled()) return flatError(c, 404, "not_found", "no such endpoint");
        return o.metricsToken() ? bearerAuth(o.metricsToken)(c, next) : next();
      },
    });
  }

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const bus = o.bus();
    const r = await bus.ready();
    const spool = bus.spoolStats();
    const checked = await Promise.all(o.roles().filter((x) => x.ready).map(async (x) => ({ name: x.name, required: x.readyRequired !== false, v: await x.ready!() })));
    // A role that is not required (the WAN: messages wait on disk) makes the appliance degraded, not unready.
    const ready = r.ok && checked.every((x) => !x.required || x.v.ok);
    const optional = checked.filter((x) => !x.required);
    const body = {
      ready,
      ...(optional.length ? { degraded: optional.some((x) => !x.v.ok) } : {}),
      checks: { config: { ok: true }, bus: { ok: r.ok, backend: bus.backend.kind, detail: r.detail }, ...Object.fromEntries(checked.map((x) => [x.name, x.v])) },
      spool,
      warnings: r.warnings,
    };
    return c.json(body, ready ? 200 : 503);
  });

  app.get(
    "/metrics",
    async (c, next) => (o.metricsToken() ? bearerAuth(o.metricsToken)(c, next) : next()),
    async (c) => {
      o.onScrape?.();
      await Promise.all(o.roles().map((r) => r.onScrape?.()));
      c.header("Content-Type", o.metrics.registry.contentType);
      return c.body(await o.metrics.registry.metrics());
    },
  );

  app.notFound((c) => flatError(c, 404, "not_found", "no such endpoint"));
  app.onError((err, c) => {
    // Limited per kind of error: an input that fails the same way on every request must not flood the log.
    o.log.limited(`public-error-${err.name}`, "error", "public API error", { path: c.req.path, client: c.get("clientIp"), error: err.message });
    return flatError(c, 500, "internal", "internal error");
  });
  return app;
}
