/**
 * A stand-in A2A upstream for the gateway tests: it echoes what it received (headers, body),
 * streams SSE events on `message/stream` (one per `interval` ms, each stamped with its send
 * time), answers 503 while `failing`, stalls on `slow`, and dies mid-stream on `die`.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";

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
