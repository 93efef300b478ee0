import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { BodyTooLargeError, readBounded } from "./body.ts";

describe("readBounded", () => {
  let server: Server;
  let base: string;
  /** Bytes the endless route managed to send before the reader hung up. */
  let sent = 0;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === "/endless") {
        res.writeHead(200, { "content-type": "application/json" });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(chunk)) sent += chunk.length;
          if (!res.destroyed) res.once("drain", pump);
        };
        res.on("close", () => undefined);
        pump();
        return;
      }
      if (req.url === "/declared") {
        res.writeHead(200, { "content-length": String(10 * 1024 * 1024) });
        res.end(Buffer.alloc(10 * 1024 * 1024));
        return;
      }
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("reads a body within its bound", async () => {
    assert.equal(await readBounded(await fetch(`${base}/small`), 1024), '{"ok":true}');
  });

  it("stops an endless body at its bound while it streams (it buffered everything before)", async () => {
    const res = await fetch(`${base}/endless`);
    await assert.rejects(readBounded(res, 1024 * 1024, "peer"), (e: Error) => e instanceof BodyTooLargeError && /peer: body larger than 1048576 bytes/.test(e.message));
    const at = sent;
    await new Promise((r) => setTimeout(r, 200));
    // The reader hung up: the server could not go on sending (socket buffers aside).
    assert.ok(sent - at < 8 * 1024 * 1024, `the server kept sending: ${sent - at} bytes after the refusal`);
    assert.ok(at < 32 * 1024 * 1024, `read far past the bound: ${at}`);
  });

  it("refuses a declared Content-Length over the bound before reading", async () => {
    await assert.rejects(readBounded(await fetch(`${base}/declared`), 1024 * 1024), /Content-Length 10485760/);
  });
});
