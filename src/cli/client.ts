/** A small client for a running appliance's agent API, over its unix socket or loopback TCP. */
import { request, type RequestOptions } from "node:http";

export interface ApiTarget {
  socketPath?: string;
  /** http://127.0.0.1:PORT */
  url?: string;
  token?: string;
}

export class ApiUnreachableError extends Error {
  override name = "ApiUnreachableError";
}

function options(t: ApiTarget, method: string, path: string, headers: Record<string, string>): RequestOptions {
  const h: Record<string, string> = { ...headers };
  if (t.token) h["authorization"] = `Bearer ${t.token}`;
  if (t.socketPath) return { socketPath: t.socketPath, method, path, headers: h };
  const u = new URL(t.url!);
  return { host: u.hostname, port: u.port, method, path, headers: h };
}

function unreachable(t: ApiTarget, err: Error): ApiUnreachableError {
  return new ApiUnreachableError(`cannot reach the appliance at ${t.socketPath ?? t.url}: ${err.message} (is pilox-mesh serve running?)`);
}

export function apiRequest(t: ApiTarget, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(options(t, method, path, payload ? { "content-type": "application/json" } : {}), (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown = text;
        try {
          json = JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("error", (err) => reject(unreachable(t, err)));
    req.end(payload);
  });
}

/** Streams SSE `data:` payloads to `onData` until the server ends the stream or `signal` aborts. */
export function apiSse(t: ApiTarget, path: string, onData: (data: string, id?: string) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options(t, "GET", path, { accept: "text/event-stream" }), signal }, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => reject(new Error(`subscribe refused (${res.statusCode}): ${Buffer.concat(chunks).toString("utf8")}`)));
        return;
      }
      res.setEncoding("utf8");
      let buf = "";
      let data: string[] = [];
      let id: string | undefined;
      res.on("data", (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (line === "") {
            if (data.length) onData(data.join("\n"), id);
            data = [];
            id = undefined;
          } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
      });
      res.on("end", () => resolve());
      res.on("error", (err) => (signal?.aborted ? resolve() : reject(err)));
    });
    req.on("error", (err) => (signal?.aborted ? resolve() : reject(unreachable(t, err))));
    req.end();
  });
}
