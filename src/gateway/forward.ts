/**
 * One proxied request: the caller's body streamed to the upstream as it arrives (bounded), the
 * upstream's answer streamed back as it arrives (SSE included), over pooled keep-alive
 * connections (TLS with a client certificate when configured). An upstream that dies mid-stream
 * ends the client's stream cleanly; a client that leaves aborts the upstream request.
 */
import { randomBytes } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

/** Response headers that belong to one hop, never passed on. */
const HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "content-length"]);

export type ForwardOutcome =
  | { kind: "response"; status: number; headers: Headers; body: ReadableStream<Uint8Array>; startedMs: number }
  | { kind: "too_large" }
  | { kind: "timeout" }
  | { kind: "unreachable"; detail: string };

export interface Upstream {
  url: URL;
  agent: HttpAgent | HttpsAgent;
}

export function upstreamOf(url: string, o: { maxSockets: number; ca?: Buffer; cert?: Buffer; key?: Buffer }): Upstream {
  const u = new URL(url);
  const agent = u.protocol === "https:" ? new HttpsAgent({ keepAlive: true, maxSockets: o.maxSockets, ...(o.ca ? { ca: o.ca } : {}), ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}) }) : new HttpAgent({ keepAlive: true, maxSockets: o.maxSockets });
  return { url: u, agent };
}

/** W3C traceparent for our hop: the caller's trace continued with a new span id, or a new trace. */
export function nextTraceparent(incoming: string | undefined): string {
  const m = incoming ? /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(incoming.trim()) : null;
  const span = randomBytes(8).toString("hex");
  if (m && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) return `00-${m[2]}-${span}-${m[4]}`;
  return `00-${randomBytes(16).toString("hex")}-${span}-01`;
}

export function forward(o: {
  upstream: Upstream;
  path: string;
  headers: Record<string, string>;
  body: Readable;
  maxBodyBytes: number;
  timeoutMs: number;
  /** Fired when the client goes away: the upstream request is aborted. */
  clientGone: AbortSignal;
}): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    const target = new URL(o.path, o.upstream.url);
    const started = performance.now();
    let settled = false;
    const done = (x: ForwardOutcome) => {
      if (!settled) {
        settled = true;
        resolve(x);
      }
    };
    const req = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, { method: "POST", agent: o.upstream.agent, headers: o.headers });
    // Only the wait for the answer's head is bounded here; a stream may then run as long as it flows.
    const timer = setTimeout(() => {
      done({ kind: "timeout" });
      req.destroy();
    }, o.timeoutMs);
    const onGone = () => req.destroy();
    o.clientGone.addEventListener("abort", onGone, { once: true });
    req.on("error", (err) => {
      clearTimeout(timer);
      done({ kind: "unreachable", detail: err.message });
    });
    req.on("response", (res: IncomingMessage) => {
      clearTimeout(timer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (v === undefined || HOP.has(k)) continue;
        for (const x of Array.isArray(v) ? v : [v]) headers.append(k, x);
      }
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          res.on("data", (chunk: Buffer) => {
            controller.enqueue(new Uint8Array(chunk));
            if ((controller.desiredSize ?? 1) <= 0) res.pause();
          });
          res.on("end", () => controller.close());
          // The upstream died mid-stream: end the client's stream, do not leave it hanging.
          res.on("error", () => {
            try {
              controller.close();
            } catch {
              /* already closed */
            }
          });
          res.on("aborted", () => {
            try {
              controller.close();
            } catch {
              /* already closed */
            }
          });
        },
        pull() {
          res.resume();
        },
        cancel() {
          o.clientGone.removeEventListener("abort", onGone);
          req.destroy();
        },
      });
      done({ kind: "response", status: res.statusCode ?? 502, headers, body, startedMs: performance.now() - started });
    });
    // The caller's body, streamed and counted.
    let n = 0;
    o.body.on("data", (chunk: Buffer) => {
      n += chunk.length;
      if (n > o.maxBodyBytes) {
        clearTimeout(timer);
        done({ kind: "too_large" });
        req.destroy();
        o.body.destroy();
      }
    });
    o.body.on("error", () => req.destroy());
    o.body.pipe(req);
  });
}
