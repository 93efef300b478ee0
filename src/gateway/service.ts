/**
 * The gateway role on the public listener (`[gateway] enabled = true`), compatible with the
 * reference's edge proxy: `POST /v1/a2a/jsonrpc` to the configured upstream, and
 * `POST /v1/a2a/{handle}/jsonrpc` to the agent a handle resolves to. Per client address (as the
 * trusted-proxy rule derives it) and route: a token bucket; overall: a concurrency cap; per
 * upstream: timeouts and a circuit breaker. The caller's credentials and trace context go on.
 */
import { Hono, type Context } from "hono";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../log/index.ts";
import type { GatewayMetrics, HttpMetrics } from "../metrics/index.ts";
import { guardedGet } from "../net/index.ts";
import type { ResolveCache } from "../resolve/index.ts";
import { CircuitBreaker, type BreakerState } from "./breaker.ts";
import type { Buckets } from "./buckets.ts";
import { forward, nextTraceparent, relayResponse, upstreamOf, type Upstream } from "./forward.ts";
import { SECURITY_HEADERS } from "../http/security-headers.ts";

/** A JSON answer of the gateway's own (the reference's error shape: `{error, …}`). */
function send(res: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): number {
  if (res.headersSent) {
    res.end();
    return status;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store", ...headers });
  res.end(text);
  return status;
}

export interface GatewayOptions {
  upstreamUrl: () => string;
  upstreamPath: () => string;
  secret: () => Buffer | undefined;
  tls: () => { ca?: Buffer; cert?: Buffer; key?: Buffer };
  buckets: Buckets;
  maxConcurrent: () => number;
  maxBodyBytes: () => number;
  timeoutMs: () => number;
  breakerFailures: () => number;
  breakerCooldownMs: () => number;
  resolver: ResolveCache;
  registries: () => string[];
  resolveAllowPrivate: () => boolean;
  /** Registries trusted for records with only proof v1 (gateway.accept_proof_v1_from). */
  acceptProofV1From: () => string[];
  metrics: GatewayMetrics;
  /** The listener's request metrics, kept for the requests the gateway takes first. */
  http?: HttpMetrics;
  log: Logger;
}

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };
/** The caller's headers that go upstream as they came (besides content type, accept, trace). */
const PASSED_ON = ["authorization", "x-pilox-public-a2a-key", "tracestate", "baggage"];

export class GatewayService {
  #active = 0;
  /** Gives a slot back (forward() calls it when the client's response closes). */
  readonly #release = () => {
    this.#active--;
  };
  readonly #upstreams = new Map<string, { upstream: Upstream; breaker: CircuitBreaker }>();

  constructor(private readonly o: GatewayOptions) {}

  readonly #byHref = new Map<string, { upstream: Upstream; breaker: CircuitBreaker }>();

  /** Pool and breaker per upstream origin (the configured one, and each resolved agent). */
  #target(href: string): { upstream: Upstream; breaker: CircuitBreaker } {
    const known = this.#byHref.get(href);
    if (known) return known;
    const origin = new URL(href).origin;
    let t = this.#upstreams.get(origin);
    if (!t) {
      if (this.#upstreams.size >= 1_000) {
        const first = this.#upstreams.keys().next().value as string;
        this.#upstreams.get(first)!.upstream.agent.destroy();
        this.#upstreams.delete(first);
        this.#byHref.clear();
      }
      const breaker = new CircuitBreaker(this.o.breakerFailures, this.o.breakerCooldownMs, (s) => {
        this.o.metrics.breaker.set({ upstream: origin }, STATE_VALUE[s]);
        this.o.log.warn("gateway circuit breaker", { upstream: origin, state: s });
      });
      this.o.metrics.breaker.set({ upstream: origin }, 0);
      t = { upstream: upstreamOf(origin, { maxSockets: this.o.maxConcurrent(), ...this.o.tls() }), breaker };
      this.#upstreams.set(origin, t);
    }
    if (this.#byHref.size >= 10_000) this.#byHref.clear();
    this.#byHref.set(href, t);
    return t;
  }

  #authFor: Buffer | undefined;
  #authText = "";
  /** `Bearer <secret>`, made again only when the secret (a reload) changed. */
  #auth(): string {
    const secret = this.o.secret();
    if (!secret) return "";
    if (secret !== this.#authFor) {
      this.#authFor = secret;
      this.#authText = `Bearer ${secret.toString("utf8")}`;
    }
    return this.#authText;
  }

  readonly #urls = new Map<string, URL>();
  /** Parsed target URLs, kept (a few: the upstream and the agents resolved lately). */
  #url(s: string): URL {
    let u = this.#urls.get(s);
    if (!u) {
      if (this.#urls.size >= 1_000) this.#urls.clear();
      this.#urls.set(s, (u = new URL(s)));
    }
    return u;
  }

  breakers(): Record<string, BreakerState> {
    return Object.fromEntries([...this.#upstreams].map(([k, v]) => [k, v.breaker.state]));
  }

  close(): void {
    for (const t of this.#upstreams.values()) t.upstream.agent.destroy();
    this.#upstreams.clear();
    this.#byHref.clear();
  }

  /**
   * Takes the gateway's POSTs before the web framework: they are proxied from Node's request to
   * Node's response (measured: the framework's per-request work was most of the cost). Returns
   * false for anything else, which the public app serves.
   */
  intercept(req: IncomingMessage, res: ServerResponse, client: string): boolean {
    const url = req.url ?? "";
    if (!url.startsWith("/v1/a2a/") || req.method !== "POST") return false;
    // The listener's security headers, on every answer (proxied ones bypass the framework).
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const started = performance.now();
    const path = url.split("?", 1)[0]!;
    let route: string;
    let job: Promise<number>;
    if (path === "/v1/a2a/jsonrpc") {
      route = "/v1/a2a/jsonrpc";
      const base = this.o.upstreamUrl();
      job = base ? this.#proxy(req, res, client, "jsonrpc", base.replace(/\/+$/, "") + this.o.upstreamPath()) : Promise.resolve(send(res, 503, { error: "origin_unavailable", reason: "no gateway.upstream_url" }));
    } else if (path.endsWith("/jsonrpc") && path.length > "/v1/a2a//jsonrpc".length) {
      route = "/v1/a2a/:handle/jsonrpc";
      job = this.#viaHandle(req, res, client, path.slice("/v1/a2a/".length, -"/jsonrpc".length));
    } else return false;
    job
      .catch((err: unknown) => {
        this.o.log.error("gateway error", { error: (err as Error)?.message ?? String(err) });
        return res.headersSent ? 500 : send(res, 500, { error: "internal" });
      })
      .then((status) => {
        this.o.http?.requests.inc({ listener: "public", route, method: "POST", status: String(status) });
        this.o.http?.duration.observe({ listener: "public", route, method: "POST" }, (performance.now() - started) / 1000);
      });
    return true;
  }

  async #viaHandle(req: IncomingMessage, res: ServerResponse, client: string, encoded: string): Promise<number> {
    let handle: string;
    try {
      handle = decodeURIComponent(encoded);
    } catch {
      return send(res, 404, { error: "not_found" });
    }
    const r = await this.o.resolver.resolve(handle, { registries: this.o.registries(), acceptProofV1From: this.o.acceptProofV1From(), allowPrivate: this.o.resolveAllowPrivate() });
    if (!r.ok) return send(res, r.unreachable ? 503 : 404, { error: r.unreachable ? "origin_unavailable" : "not_found", reason: r.reason });
    const a2a = r.value.routes.a2a;
    const target = a2a?.publicJsonRpcUrl ?? a2a?.jsonRpcUrl;
    if (!target) return send(res, 404, { error: "not_found", reason: "the agent's descriptor advertises no A2A JSON-RPC endpoint" });
    // What was proven on the way (proof v2 or the trusted registry's v1; a signed or stock descriptor).
    res.setHeader("x-pilox-mesh-verified", `record=proof-${r.value.verified.record}; descriptor=${r.value.verified.descriptor}`);
    return this.#proxy(req, res, client, `handle:${handle}`, target);
  }

  /** Proxies one request; resolves to the status the client got. */
  async #proxy(incoming: IncomingMessage, outgoing: ServerResponse, client: string, route: string, targetUrl: string): Promise<number> {
    const allowed = this.o.buckets.take(`${route}|${client}`);
    if (!(allowed === true || (allowed !== false && (await allowed)))) {
      this.o.metrics.rateLimited.inc({ route: route.startsWith("handle:") ? "handle" : route });
      return send(outgoing, 429, { error: "rate_limited" }, { "retry-after": "1" });
    }
    const h = incoming.headers;
    const declared = Number(h["content-length"] ?? 0);
    if (declared > this.o.maxBodyBytes()) return send(outgoing, 413, { error: "payload_too_large" });
    if (this.#active >= this.o.maxConcurrent()) return send(outgoing, 503, { error: "gateway_busy" }, { "retry-after": "1" });
    const target = this.#url(targetUrl);
    const t = this.#target(target.href);
    if (!t.breaker.allow()) return send(outgoing, 503, { error: "origin_unavailable", reason: "circuit open" }, { "retry-after": String(Math.ceil(this.o.breakerCooldownMs() / 1000)) });
    // (Node joins repeated request headers into one string, set-cookie aside.)
    const headers: Record<string, string> = {
      "content-type": (h["content-type"] as string | undefined) ?? "application/json",
      accept: (h["accept"] as string | undefined) ?? "application/json, text/event-stream",
      traceparent: nextTraceparent(h["traceparent"] as string | undefined),
      "x-forwarded-for": client,
    };
    if (declared) headers["content-length"] = String(declared);
    else headers["transfer-encoding"] = "chunked";
    for (const k of PASSED_ON) {
      const v = h[k] as string | undefined;
      if (v !== undefined) headers[k] = v;
    }
    const auth = this.#auth();
    if (auth) {
      // The reference sends X-Hive-Gateway-Auth; the Pilox app reads X-Pilox-Gateway-Auth: both.
      headers["x-pilox-gateway-auth"] = auth;
      headers["x-hive-gateway-auth"] = auth;
    }
    // The slot is given back when the response closes, done or cut short (forward() then
    // aborts the upstream request if the client went away first).
    this.#active++;
    const label = { upstream: target.origin };
    const out = await forward({ upstream: t.upstream, path: target.pathname + target.search, headers, body: incoming, maxBodyBytes: this.o.maxBodyBytes(), timeoutMs: this.o.timeoutMs(), client: outgoing, onClose: this.#release });
    if (out.kind === "too_large") return send(outgoing, 413, { error: "payload_too_large" });
    if (out.kind === "timeout") {
      t.breaker.failure();
      this.o.metrics.upstreamFailures.inc({ ...label, kind: "timeout" });
      return send(outgoing, 504, { error: "upstream_timeout" });
    }
    if (out.kind === "unreachable") {
      t.breaker.failure();
      this.o.metrics.upstreamFailures.inc({ ...label, kind: "unreachable" });
      this.o.log.limited(`gw-unreachable-${target.origin}`, "warn", "gateway upstream unreachable", { upstream: target.origin, error: out.detail });
      return send(outgoing, 503, { error: "origin_unavailable" });
    }
    this.o.metrics.upstreamSeconds.observe(label, out.startedMs / 1000);
    const code = out.res.statusCode ?? 502;
    if (code >= 502) {
      t.breaker.failure();
      this.o.metrics.upstreamFailures.inc({ ...label, kind: `http_${code}` });
    } else t.breaker.success();
    relayResponse(out.res, outgoing);
    return code;
  }

  routes(): Hono<{ Variables: { clientIp: string } }> {
    const app = new Hono<{ Variables: { clientIp: string } }>();
    const health = async (c: Context) => {
      const base = this.o.upstreamUrl();
      let upstream: { url: string; reachable: boolean; status?: number } | null = null;
      if (base) {
        try {
          const r = await guardedGet(base, { allowPrivate: true, timeoutMs: 2_000, maxBytes: 4096 });
          upstream = { url: base, reachable: true, status: r.status };
        } catch {
          upstream = { url: base, reachable: false };
        }
      }
      const ok = upstream === null || upstream.reachable;
      return c.json({ ok, role: "pilox-mesh-gateway", upstream, breakers: this.breakers(), active: this.#active }, ok ? 200 : 503);
    };
    app.get("/v1/gateway/health", health);
    app.get("/v1/health", health);
    return app;
  }
}
