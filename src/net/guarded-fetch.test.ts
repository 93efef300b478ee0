import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { guardedGet, isPrivateAddress } from "./guarded-fetch.ts";

describe("guardedGet", () => {
  it("knows private, loopback, link-local and mapped addresses", () => {
    for (const ip of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "not-an-ip"]) assert.ok(isPrivateAddress(ip), ip);
    for (const ip of ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"]) assert.ok(!isPrivateAddress(ip), ip);
  });

  it("refuses private targets by name or literal, redirects, oversized bodies, slow servers", async () => {
    const srv = createServer((q, r) => {
      if (q.url === "/redirect") r.writeHead(302, { location: "http://169.254.169.254/" }).end();
      else if (q.url === "/big") r.end("x".repeat(10_000));
      else if (q.url === "/slow") setTimeout(() => r.end("late"), 2_000);
      else r.end("ok");
    });
    await new Promise<void>((res) => srv.listen(0, "127.0.0.1", res));
    const port = (srv.address() as { port: number }).port;
    try {
      await assert.rejects(guardedGet(`http://127.0.0.1:${port}/`), /private address/);
      await assert.rejects(guardedGet(`http://localhost:${port}/`), /private address/);
      assert.equal((await guardedGet(`http://localhost:${port}/`, { allowPrivate: true })).body, "ok");
      await assert.rejects(guardedGet(`http://127.0.0.1:${port}/redirect`, { allowPrivate: true }), /redirects are not followed/);
      await assert.rejects(guardedGet(`http://127.0.0.1:${port}/big`, { allowPrivate: true, maxBytes: 1_000 }), /larger than 1000 bytes/);
      await assert.rejects(guardedGet(`http://127.0.0.1:${port}/slow`, { allowPrivate: true, timeoutMs: 200 }), /timed out/);
      await assert.rejects(guardedGet("file:///etc/passwd"), /not an http/);
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });
});
