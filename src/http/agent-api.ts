/**
 * The agent API: how agents in any language use the bus. POST publishes (the appliance seals),
 * GET subscribe streams verified messages as Server-Sent Events, resumable on durable channels.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import { BusUnavailableError, type Delivery, type MeshBus } from "../bus/index.ts";
import { CHANNEL_NAME, describeIssues } from "../bus/channels.ts";
import { MessageTooLargeError, SealError } from "../bus/envelope/seal.ts";
import { traceOf } from "../bus/trace.ts";
import { MAX_JSON_DEPTH, parseJson } from "../json/index.ts";
import { strictObject } from "../schema/index.ts";
import type { Logger } from "../log/index.ts";
import { bearerAuth } from "./auth.ts";
import { jsonError } from "./errors.ts";
import { httpMetrics } from "./metrics.ts";
import { sseResponse } from "./sse-sink.ts";
import type { HttpMetrics } from "../metrics/index.ts";

export interface WanDlq {
  list(after: number, limit: number): Promise<unknown[]>;
  replay(id: number): Promise<{ ok: true; delivered: number } | { ok: false; reason: string; detail: string }>;
}

export interface AgentApiOptions {
  bus: () => MeshBus;
  maxBodyBytes: () => number;
  maxSubscribers: () => number;
  /** When set, every request needs `Authorization: Bearer <token>` (the TCP listener). */
  token?: () => Buffer | undefined;
  log: Logger;
  /** GET /v1/federation/status. */
  federationStatus: () => unknown;
  /** POST /v1/admin/reload: what SIGHUP does; `{"allowRemovals": true}` lets it drop keys, peers or channels. */
  reload: (o: { allowRemovals?: boolean }) => Promise<{ ok: true; pendingRestart?: string[] } | { ok: false; error: string }>;
  /** Request metrics, labelled with `listener`. */
  metrics?: HttpMetrics;
  listener?: string;
  /** GET /v1/status: what `pilox-mesh status` shows. */
  status?: () => Promise<unknown>;
  /** The WAN's dead letters (`pilox-mesh wan dlq`); undefined without [wan]. */
  wanDlq?: () => WanDlq | undefined;
  /** Interval of SSE keep-alive comments. */
  heartbeatMs?: number;
  /** Bounds on what waits for one slow SSE reader, and on all of them together. */
  sse: () => { maxQueuedBytes: number; maxTotalQueuedBytes: number; writeTimeoutMs: number };
}

const PublishBody = strictObject({
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
/** {channel, message: …}: the message starts one level down. */
const MAX_BODY_DEPTH = MAX_JSON_DEPTH + 1;
const LAST_EVENT_ID = /^\d{1,20}-\d{1,20}$/;

const encoder = new TextEncoder();
/**
 * A delivery's SSE event, encoded once for every subscriber it goes to (a tap hands the same
 * delivery to each): 10,000 subscribers of a channel cost one string and one encoding a message.
 */
const eventBytes = new WeakMap<Delivery, Uint8Array>();
function sseEvent(d: Delivery): Uint8Array {
  let b = eventBytes.get(d);
  if (!b) eventBytes.set(d, (b = encoder.encode(`id: ${d.id ?? d.eventId}\nevent: message\ndata: ${d.text()}\n\n`)));
  return b;
}

export function agentApi(o: AgentApiOptions): Hono {
  const app = new Hono();
  let subscribers = 0;
  /** Bytes waiting for every SSE reader together. */
  let totalQueued = 0;
  /**
   * Each stream's once-a-second check (write timeout, keep-alive), run by one timer for all of
   * them: ten thousand subscribers are not ten thousand timers.
   */
  const sseChecks = new Set<() => void>();
  let sseTimer: NodeJS.Timeout | undefined;
  const watch = (check: () => void): (() => void) => {
    sseChecks.add(check);
    sseTimer ??= setInterval(() => {
      for (const f of sseChecks) f();
    }, Math.min(o.heartbeatMs ?? 15_000, 1_000));
    return () => {
      sseChecks.delete(check);
      if (sseChecks.size === 0) {
        clearInterval(sseTimer);
        sseTimer = undefined;
      }
    };
  };
  app.use("*", httpMetrics(o.metrics, o.listener ?? "agent"));
  if (o.token) app.use("*", bearerAuth(o.token));

  app.post(
    "/v1/bus/publish",
    (c, next) =>
      bodyLimit({
        maxSize: o.maxBodyBytes(),
        onError: (c) => jsonError(c, 413, "payload_too_large", `the body exceeds ${o.maxBodyBytes()} bytes`),
      })(c, next),
    async (c) => {
      const body = parseJson(await c.req.text(), MAX_BODY_DEPTH);
      if (!body.ok) {
        return body.reason === "too_deep"
          ? jsonError(c, 400, "too_deep", `the message is ${body.detail}`)
          : jsonError(c, 400, "invalid_json", "the body is not valid JSON");
      }
      const parsed = v.safeParse(PublishBody, body.value);
      if (!parsed.success) return jsonError(c, 400, "invalid_request", describeIssues(parsed.issues));
      const { channel, message, v1 } = parsed.output;
      try {
        // The caller's W3C trace context travels in meshExt (an invalid one is dropped).
        const trace = traceOf(c.req.header("traceparent"), c.req.header("tracestate"));
        const r = await o.bus().publish(channel, message, { v1Only: v1 === true, ...(trace ? { trace } : {}) });
        return c.json(r, 202);
      } catch (err) {
        if (err instanceof MessageTooLargeError) return jsonError(c, 413, "message_too_large", err.message);
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
    return sseResponse(c, async (stream) => {
      const limits = o.sse();
      let queued = 0;
      let queuedBytes = 0;
      let lastProgress = Date.now();
      let done: () => void = () => {};
      const finished = new Promise<void>((r) => (done = r));
      stream.onClose(() => done());
      /**
       * Ends the stream now: the socket is destroyed, so nothing waits behind the writes a
       * reader that stopped reading left queued, and their memory is released.
       */
      const cut = (why: string) => {
        if (stream.closed) return;
        o.log.limited(`sse-${why}`, "warn", "closing a slow SSE subscriber", { channel, reason: why, queued_bytes: queuedBytes });
        done();
        stream.abort();
      };
      const write = (text: string | Uint8Array): Promise<void> => {
        const size = typeof text === "string" ? text.length : text.byteLength;
        queued++;
        queuedBytes += size;
        totalQueued += size;
        return stream.write(text).then(
          () => {
            lastProgress = Date.now();
          },
          () => done(),
        ).finally(() => {
          queued--;
          queuedBytes -= size;
          totalQueued -= size;
        });
      };
      const send = (d: Delivery): Promise<void> => {
        if (stream.closed) return Promise.resolve();
        const event = sseEvent(d);
        if (queued >= MAX_QUEUED_EVENTS || queuedBytes + event.byteLength > limits.maxQueuedBytes) {
          cut("queue_full");
          return Promise.resolve();
        }
        if (totalQueued + event.byteLength > limits.maxTotalQueuedBytes) {
          cut("total_queue_full");
          return Promise.resolve();
        }
        return write(event);
      };
      const closer = durable
        ? await bus.tail(channel, lastId ?? "$", send)
        : await bus.subscribe(channel, (d) => void send(d));
      o.log.debug("SSE subscriber opened", { channel, durable, subscribers });
      // Tell the client the stream is live (and flush headers through proxies).
      void write(": subscribed\n\n");
      const heartbeatMs = o.heartbeatMs ?? 15_000;
      const unwatch = watch(() => {
        // A reader whose writes made no progress for the write timeout is gone in all but name.
        if (queued > 0 && Date.now() - lastProgress > limits.writeTimeoutMs) cut("write_timeout");
        else if (queued === 0 && Date.now() - lastProgress >= heartbeatMs) void write(": keep-alive\n\n");
      });
      try {
        await finished;
      } finally {
        unwatch();
        subscribers--;
        o.log.debug("SSE subscriber closed", { channel, subscribers });
        await closer.close().catch(() => {});
      }
    });
  });

  app.get("/v1/federation/status", (c) => c.json(o.federationStatus() as object));
  if (o.status) {
    const status = o.status;
    app.get("/v1/status", async (c) => c.json((await status()) as object));
  }

  app.post("/v1/admin/reload", async (c) => {
    const text = await c.req.text();
    const body = text.length > 1024 ? undefined : text.trim() === "" ? { ok: true as const, value: {} } : parseJson(text, 4);
    if (!body?.ok || body.value === null || typeof body.value !== "object") return jsonError(c, 400, "invalid_request", 'the body is empty or {"allowRemovals": true}');
    const r = await o.reload({ allowRemovals: (body.value as { allowRemovals?: unknown }).allowRemovals === true });
    // Applied: which changed settings wait for a restart (by key), as the log says.
    return r.ok ? c.json({ reloaded: true, pendingRestart: r.pendingRestart ?? [] }) : jsonError(c, 422, "config_rejected", r.error);
  });

  // The WAN's dead letters: read them, retry one (pilox-mesh wan dlq list|replay).
  app.get("/v1/admin/wan/dlq", async (c) => {
    const dlq = o.wanDlq?.();
    if (!dlq) return jsonError(c, 404, "wan_off", "the WAN is not configured ([wan] nats_urls)");
    const after = Number(c.req.query("after") ?? 0);
    const limit = Number(c.req.query("limit") ?? 100);
    if (!Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) return jsonError(c, 400, "invalid_request", "after is a stream sequence (≥ 0), limit 1-10000");
    try {
      return c.json({ deadLetters: await dlq.list(after, limit) });
    } catch (err) {
      return jsonError(c, 503, "nats_unavailable", (err as Error).message);
    }
  });
  app.post("/v1/admin/wan/dlq/replay", async (c) => {
    const dlq = o.wanDlq?.();
    if (!dlq) return jsonError(c, 404, "wan_off", "the WAN is not configured ([wan] nats_urls)");
    const text = await c.req.text();
    const body = text.length > 1024 ? undefined : parseJson(text, 4);
    const id = body?.ok ? (body.value as { id?: unknown } | null)?.id : undefined;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) return jsonError(c, 400, "invalid_request", 'the body is {"id": <dead letter id>}');
    try {
      const r = await dlq.replay(id);
      return r.ok ? c.json(r) : jsonError(c, r.reason === "not_found" ? 404 : 409, r.reason, r.detail);
    } catch (err) {
      return jsonError(c, 503, "unavailable", (err as Error).message);
    }
  });

  app.notFound((c) => jsonError(c, 404, "not_found", "no such endpoint"));
  app.onError((err, c) => {
    o.log.error("agent API error", { path: c.req.path, error: err.message });
    return jsonError(c, 500, "internal", "internal error");
  });
  return app;
}
