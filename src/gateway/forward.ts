/**
 * One proxied request: the caller's body streamed to the upstream as it arrives (bounded), the
 * upstream's answer streamed back as it arrives (SSE included), over pooled keep-alive
 * connections (TLS with a client certificate when configured). A client that leaves aborts the
 * upstream request.
 */
import { randomHex } from "../random/index.ts";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

/** Response headers that belong to one hop, never passed on. */
const HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]);

/**
 * Writes the upstream's answer to the client as it arrives (native streams: the first byte
 * leaves when it comes, backpressure both ways). An upstream that dies mid-stream ends the
 * client's response cleanly.
 */
export function relayResponse(res: IncomingMessage, out: ServerResponse): void {
  // The raw name/value list as received (no per-header object work), hop-by-hop ones left out.
  const raw = res.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  // Headers leave with the first chunk of the body (one write, not two).
  out.writeHead(res.statusCode ?? 502, headers);
  const end = () => {
    if (!out.writableEnded) out.end();
  };
  res.on("error", end);
  res.on("aborted", end);
  res.pipe(out);
}

export type ForwardOutcome =
  | { kind: "response"; res: IncomingMessage; startedMs: number }
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
  const span = randomHex(8);
  if (m && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) return `00-${m[2]}-${span}-${m[4]}`;
  return `00-${randomHex(16)}-${span}-01`;
}

export function forward(o: {
  upstream: Upstream;
  path: string;
  headers: Record<string, string>;
  body: Readable;
  maxBodyBytes: number;
  timeoutMs: number;
  /** The client's response: if it closes before it finished, the upstream request is aborted. */
  client: ServerResponse;
  /** Called once when the client's response closes, however it ends. */
  onClose: () => void;
}): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    const u = o.upstream.url;
    const started = performance.now();
    let settled = false;
    const done = (x: ForwardOutcome) => {
      if (!settled) {
        settled = true;
        resolve(x);
      }
    };
    // Plain options, not a URL object: it is converted again for every request otherwise.
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)({ protocol: u.protocol, hostname: u.hostname.replace(/^\[|\]$/g, ""), port: u.port || (u.protocol === "https:" ? 443 : 80), path: o.path, method: "POST", agent: o.upstream.agent, headers: o.headers, ...(u.protocol === "https:" ? { servername: u.hostname } : {}) });
    // Only the wait for the answer's head is bounded here; a stream may then run as long as it
    // flows. (A socket timeout: cheaper than a timer per request.)
    req.setTimeout(o.timeoutMs, () => {
      done({ kind: "timeout" });
      req.destroy();
    });
    o.client.once("close", () => {
      if (!o.client.writableFinished) req.destroy();
      o.onClose();
    });
    req.on("error", (err) => done({ kind: "unreachable", detail: err.message }));
    req.on("response", (res: IncomingMessage) => {
      req.setTimeout(0);
      done({ kind: "response", res, startedMs: performance.now() - started });
    });
    // The caller's body, streamed; counted only when it declared no length (with one, Node's
    // parser holds it to it, and the caller checked it against the bound).
    let n = 0;
    if (o.headers["content-length"] === undefined) o.body.on("data", (chunk: Buffer) => {
      n += chunk.length;
      if (n > o.maxBodyBytes) {
        done({ kind: "too_large" });
        // The rest of the caller's body is dropped by the listener after our 413, not cut here
        // (cutting it resets the connection before the caller reads the answer).
        o.body.unpipe(req);
        req.destroy();
      }
    });
    o.body.on("error", () => req.destroy());
    o.body.pipe(req);
  });
}
