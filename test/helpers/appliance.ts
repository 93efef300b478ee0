/** An in-process appliance on scratch paths and ephemeral ports. */
import { request } from "node:http";
import { Appliance } from "../../src/daemon/appliance.ts";
import { silentLogger, createLogger } from "../../src/log/index.ts";

export async function startAppliance(configPath: string, stateDir: string): Promise<Appliance> {
  const log = process.env["PILOX_TEST_LOG"] ? createLogger({ level: "debug", format: "text" }) : silentLogger;
  return Appliance.start({ load: { path: configPath, stateDir }, log });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any;
}

export function http(
  target: { socketPath: string } | { port: number },
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    // A fresh connection per request: a keep-alive socket the server closed after an early
    // answer (413) must not fail the next test.
    const req = request({ ...("socketPath" in target ? { socketPath: target.socketPath } : { host: "127.0.0.1", port: target.port }), method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Opens an SSE stream and collects events until `close()`. */
export function sse(target: { socketPath: string } | { port: number }, path: string, headers: Record<string, string> = {}) {
  const events: { id?: string; data: string }[] = [];
  let status = 0;
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  const req = request({ ...("socketPath" in target ? { socketPath: target.socketPath } : { host: "127.0.0.1", port: target.port }), method: "GET", path, headers }, (res) => {
    status = res.statusCode ?? 0;
    res.setEncoding("utf8");
    let buf = "";
    res.on("data", (chunk: string) => {
      buf += chunk;
      let sep: number;
      while ((sep = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        if (block.startsWith(": subscribed")) opened();
        const ev: { id?: string; data: string } = { data: "" };
        let has = false;
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) ev.id = line.slice(4);
          if (line.startsWith("data: ")) {
            ev.data += line.slice(6);
            has = true;
          }
        }
        if (has) events.push(ev);
      }
    });
    res.on("end", () => opened());
  });
  req.on("error", () => opened());
  req.end();
  return { events, open, status: () => status, close: () => req.destroy() };
}

/** Until every appliance given is connected to NATS with its WAN ready. */
export async function untilOnWan(what: string, ...apps: Appliance[]): Promise<void> {
  // Creating replicated streams and consumers on a loaded machine can take a while.
  const end = Date.now() + 60_000;
  while (!(await Promise.all(apps.map((x) => x.status()))).every((st) => st.wan?.connected === true)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
