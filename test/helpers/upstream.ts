/**
 * A stand-in A2A upstream for the gateway tests: it echoes what it received (headers, body),
 * streams SSE events on `message/stream` (one per `interval` ms, each stamped with its send
 * time), answers 503 while `failing`, stalls on `slow`, and dies mid-stream on `die`.
 */
import { createServer, request, type IncomingMessage, type Server } from "node:http";

export interface TestUpstream {
  port: number;
  url: string;
  hits: number;
  failing: boolean;
  last?: { headers: IncomingMessage["headers"]; body: string };
  close(): Promise<void>;
}

export async function startUpstream(): Promise<TestUpstream> {
  const u: TestUpstream = { port: 0, url: "", hits: 0, failing: false, close: async () => {} };
  const srv: Server = createServer((req, res) => {
    u.hits++;
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      u.last = { headers: req.headers, body };
      if (u.failing) return void res.writeHead(503, { "content-type": "application/json", "retry-after": "7" }).end('{"error":"down"}');
      let method = "";
      try {
        method = (JSON.parse(body) as { method?: string }).method ?? "";
      } catch {
        return void res.writeHead(400, { "content-type": "application/json" }).end('{"jsonrpc":"2.0","error":{"code":-32700,"message":"parse error"},"id":null}');
      }
      if (method === "slow") return void setTimeout(() => res.end("{}"), 3_000).unref();
      if (method === "message/stream" || method === "die") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        let i = 0;
        const t = setInterval(() => {
          res.write(`data: ${JSON.stringify({ i, sentAt: Date.now() })}\n\n`);
          if (method === "die" && i === 0) {
            clearInterval(t);
            setTimeout(() => req.socket.destroy(), 50);
            return;
          }
          if (++i === 5) {
            clearInterval(t);
            res.end();
          }
        }, 100);
        res.on("close", () => clearInterval(t));
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "retry-after": "3" }).end(JSON.stringify({ jsonrpc: "2.0", result: { echo: method }, id: 1 }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  u.port = (srv.address() as { port: number }).port;
  u.url = `http://127.0.0.1:${u.port}`;
  u.close = () =>
    new Promise<void>((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return u;
}

/**
 * POSTs `body` and reads the SSE answer of the upstream's `message/stream`: when the first byte
 * came (ms after sending) and each event with how long after its `sentAt` stamp it arrived.
 */
export function readStream(port: number, path: string, body: string): Promise<{ contentType: string | undefined; firstByteMs: number; events: { event: { i: number; sentAt: number }; lagMs: number }[] }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let firstByteMs = 0;
    const events: { event: { i: number; sentAt: number }; lagMs: number }[] = [];
    const req = request({ host: "127.0.0.1", port, path, method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.setEncoding("utf8");
      let buf = "";
      res.on("data", (d: string) => {
        firstByteMs ||= Date.now() - t0;
        buf += d;
        let k: number;
        while ((k = buf.indexOf("\n\n")) >= 0) {
          const event = JSON.parse(buf.slice(6, k)) as { i: number; sentAt: number };
          events.push({ event, lagMs: Date.now() - event.sentAt });
          buf = buf.slice(k + 2);
        }
      });
      res.on("end", () => resolve({ contentType: res.headers["content-type"], firstByteMs, events }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
