/**
 * The agent API: how agents in any language use the bus. POST publishes (the appliance seals),
 * GET subscribe streams verified messages as Server-Sent Events, resumable on durable channels.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import * as v from "valibot";
import { BusUnavailableError, type Delivery, type MeshBus } from "../bus/index.ts";
import { CHANNEL_NAME, describeIssues } from "../bus/channels.ts";
import { SealError } from "../bus/envelope/seal.ts";
import type { Logger } from "../log/index.ts";
import { bearerAuth } from "./auth.ts";
import { jsonError } from "./errors.ts";

export interface AgentApiOptions {
  bus: () => MeshBus;
  maxBodyBytes: () => number;
  maxSubscribers: () => number;
  /** When set, every request needs `Authorization: Bearer <token>` (the TCP listener). */
  token?: () => Buffer | undefined;
  log: Logger;
  /** GET /v1/federation/status. */
  federationStatus: () => unknown;
  /** POST /v1/admin/reload: what SIGHUP does. */
  reload: () => Promise<{ ok: true } | { ok: false; error: string }>;
  /** Interval of SSE keep-alive comments. */
  heartbeatMs?: number;
}

const PublishBody = v.strictObject({
  channel: CHANNEL_NAME,
  message: v.pipe(
    v.unknown(),
    v.check((x) => x !== null && typeof x === "object" && !Array.isArray(x), "message must be a JSON object"),
    v.transform((x) => x as Record<string, unknown>),
  ),
  /** Emit the plain Pilox v1 form (no meshExt), for stock Pilox subscribers on our channels. */
  v1: v.optional(v.boolean()),
});

/** A stream whose client reads slower than this many queued events is closed (it can resume). */
const MAX_QUEUED_EVENTS = 1024;
const LAST_EVENT_ID = /^\d{1,20}-\d{1,20}$/;

export function agentApi(o: AgentApiOptions): Hono {
  const app = new Hono();
  let subscribers = 0;
  if (o.token) app.use("*", bearerAuth(o.token));

  app.post(
    "/v1/bus/publish",
    (c, next) =>
      bodyLimit({
        maxSize: o.maxBodyBytes(),
        onError: (c) => jsonError(c, 413, "payload_too_large", `the body exceeds ${o.maxBodyBytes()} bytes`),
      })(c, next),
    async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return jsonError(c, 400, "invalid_json", "the body is not valid JSON");
      }
      const parsed = v.safeParse(PublishBody, body);
      if (!parsed.success) return jsonError(c, 400, "invalid_request", describeIssues(parsed.issues));
      const { channel, message, v1 } = parsed.output;
      try {
        const r = await o.bus().publish(channel, message, { v1Only: v1 === true });
        return c.json(r, 202);
      } catch (err) {
        if (err instanceof SealError) return jsonError(c, 422, "invalid_message", err.message);
        if (err instanceof BusUnavailableError) {
          c.header("Retry-After", "1");
          return jsonError(c, 503, err.code, err.message);
        }
        throw err;
      }
    },
  );

  app.get("/v1/bus/subscribe", async (c) => {
    const ch = v.safeParse(CHANNEL_NAME, c.req.query("channel"));
    if (!ch.success) return jsonError(c, 400, "invalid_request", `channel: ${describeIssues(ch.issues)}`);
    const channel = ch.output;
    const bus = o.bus();
    const durable = bus.isDurable(channel);
    const lastId = c.req.header("last-event-id") ?? c.req.query("last_event_id");
    if (lastId !== undefined && durable && !LAST_EVENT_ID.test(lastId)) {
      return jsonError(c, 400, "invalid_request", "Last-Event-ID is not an id this stream sent");
    }
    if (subscribers >= o.maxSubscribers()) return jsonError(c, 503, "too_many_subscribers", "subscriber limit reached");
    subscribers++;
    return streamSSE(c, async (stream) => {
      let queued = 0;
      let done: () => void = () => {};
      const finished = new Promise<void>((r) => (done = r));
      stream.onAbort(() => done());
      const send = (d: Delivery): Promise<void> => {
        if (stream.aborted || stream.closed) return Promise.resolve();
        if (++queued > MAX_QUEUED_EVENTS) {
          o.log.limited("sse-slow", "warn", "closing a slow SSE subscriber", { channel });
          done();
          return Promise.resolve();
        }
        return stream.writeSSE({ id: d.id ?? d.eventId, event: "message", data: JSON.stringify(d.message) }).finally(() => queued--);
      };
      const closer = durable
        ? await bus.tail(channel, lastId ?? "$", send)
        : await bus.subscribe(channel, (d) => void send(d).catch(() => done()));
      // Tell the client the stream is live (and flush headers through proxies).
      await stream.write(": subscribed\n\n");
      const hb = setInterval(() => void stream.write(": keep-alive\n\n").catch(() => done()), o.heartbeatMs ?? 15_000);
      try {
        await finished;
      } finally {
        clearInterval(hb);
        subscribers--;
        await closer.close().catch(() => {});
      }
    });
  });

  app.get("/v1/federation/status", (c) => c.json(o.federationStatus() as object));

  app.post("/v1/admin/reload", async (c) => {
    const r = await o.reload();
    return r.ok ? c.json({ reloaded: true }) : jsonError(c, 422, "config_rejected", r.error);
  });

  app.notFound((c) => jsonError(c, 404, "not_found", "no such endpoint"));
  app.onError((err, c) => {
    o.log.error("agent API error", { path: c.req.path, error: err.message });
    return jsonError(c, 500, "internal", "internal error");
  });
  return app;
}
