/** Starting hono apps on TCP or a unix socket through @hono/node-server, with limits. */
import { createAdaptorServer } from "@hono/node-server";
import type { Env, Hono } from "hono";
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createConnection } from "node:net";
import { dirname } from "node:path";

export interface Listening {
  server: Server;
  /** "host:port" or the socket path. */
  address: string;
  port?: number;
  /** Present on HTTPS listeners: replaces the certificate for new connections. */
  setTls?: (tls: { cert: Buffer; key: Buffer }) => void;
  /** Stops accepting, lets requests finish for `graceMs`, then cuts what is left (SSE streams). */
  close(graceMs?: number): Promise<void>;
}

export function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(s.slice(i + 1)) };
}

/** A client has this long to send its request headers (then 408 and the socket is closed). */
export const HEADERS_TIMEOUT_MS = 10_000;

/** Takes a request before the app (the gateway's proxied POSTs); true when it answered it. */
export type Intercept = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * A body left unread when the answer is sent (a 413, a 401 before the body) is read and dropped,
 * up to this many bytes, so the client reads the answer instead of a reset connection (closing
 * a socket with unread data makes the kernel send RST, and the client loses the answer). Past
 * the bound, or past the server's requestTimeout, the connection is cut.
 */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024;

/** Reads and drops what is left of `req`'s body once its answer is sent (see DRAIN_MAX_BYTES). */
function drainAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  // A client that asked for "Connection: close" would have its socket closed by Node as soon as
  // the answer is written, with its body still arriving (EPIPE or a reset on its side): the
  // socket is kept while the rest is dropped, and closed after.
  // (Only such a client pays for the wrapper: the hot path of keep-alive POSTs does not.)
  let closeAfter = false;
  if (!res.shouldKeepAlive) {
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      if (!req.complete) {
        res.shouldKeepAlive = true;
        closeAfter = true;
      }
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.writeHead;
  }
  res.once("finish", () => {
    if (req.complete || req.destroyed) {
      if (closeAfter) req.socket?.end();
      return;
    }
    // Whoever read the body before (a web stream) has given up on it: its listeners go.
    req.removeAllListeners("data");
    let n = 0;
    req.on("data", (chunk: Buffer) => {
      n += chunk.length;
      if (n > DRAIN_MAX_BYTES) req.socket?.destroy();
    });
    if (closeAfter) req.once("end", () => req.socket?.end());
    req.resume();
  });
}

function adapt<E extends Env>(app: Hono<E>, tls?: { cert: Buffer; key: Buffer }, intercept?: Intercept): Server {
  // Slow or stuck clients must not pin resources: bound header size and time, and check
  // the timeouts every second (Node's default is every 30 s). 16 KiB of headers at most.
  const common = { connectionsCheckingInterval: 1_000, maxHeaderSize: 16 * 1024, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: 30_000 };
  // autoCleanupIncoming off: the adapter's own clean-up cuts a body still arriving after 500 ms
  // (a slow client then sees a reset instead of the 413); drainAfterAnswer does it with bounds.
  const server = (
    tls
      ? createAdaptorServer({ fetch: app.fetch, autoCleanupIncoming: false, createServer: createHttpsServer, serverOptions: { ...common, cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" } })
      : createAdaptorServer({ fetch: app.fetch, autoCleanupIncoming: false, serverOptions: common })
  ) as Server;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  const handlers = server.listeners("request") as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners("request");
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "GET" && req.method !== "HEAD") drainAfterAnswer(req, res);
    if (!intercept?.(req, res)) for (const l of handlers) l(req, res);
  });
  return server;
}

function closer(server: Server) {
  return (graceMs = 5_000) =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), graceMs).unref();
    });
}

/** With `tls`, an HTTPS listener whose certificate `setTls` swaps without a restart. */
export function listenTcp<E extends Env>(app: Hono<E>, hostPort: string, tls?: { cert: Buffer; key: Buffer }, intercept?: Intercept): Promise<Listening> {
  const { host, port } = parseHostPort(hostPort);
  const server = adapt(app, tls, intercept);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address() as { port: number };
      const l: Listening = { server, address: `${host}:${a.port}`, port: a.port, close: closer(server) };
      if (tls) l.setTls = (t) => (server as unknown as HttpsServer).setSecureContext({ cert: t.cert, key: t.key });
      resolve(l);
    });
  });
}

/** Listens on a unix socket with `mode`; replaces a stale socket file left by a crash. */
export async function listenUnix<E extends Env>(app: Hono<E>, path: string, mode: number): Promise<Listening> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
    const alive = await new Promise<boolean>((r) => {
      const c = createConnection(path);
      c.once("connect", () => (c.destroy(), r(true)));
      c.once("error", () => r(false));
    });
    if (alive) throw new Error(`${path} is in use by another process (is pilox-mesh already running?)`);
    unlinkSync(path);
  }
  const server = adapt(app);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(path, mode);
  const close = closer(server);
  return {
    server,
    address: path,
    close: async (graceMs) => {
      await close(graceMs);
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    },
  };
}
