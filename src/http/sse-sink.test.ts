import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import { sseResponse } from "./sse-sink.ts";

function app(onClosed?: () => void): Hono {
  const a = new Hono();
  a.get("/", (c) =>
    sseResponse(c, async (s) => {
      s.onClose(() => onClosed?.());
      await s.write(": hello\n\n");
      await s.write(new TextEncoder().encode("data: 1\n\n"));
    }),
  );
  a.get("/cut", (c) =>
    sseResponse(c, async (s) => {
      await s.write("data: before\n\n");
      s.abort();
      assert.equal(s.closed, true);
      await s.write("data: after\n\n"); // settles, writes nothing
    }),
  );
  return a;
}

describe("SSE sink", () => {
  it("without a Node response (other runtimes) it streams through hono's web stream", async () => {
    const res = await app().request("/");
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(await res.text(), ": hello\n\ndata: 1\n\n");
  });

  it("under @hono/node-server it writes to the Node response, ends with the stream, and cuts on abort", async () => {
    let closed = 0;
    const server = createAdaptorServer({ fetch: app(() => closed++).fetch });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const res = await fetch(base + "/");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      assert.equal(await res.text(), ": hello\n\ndata: 1\n\n");
      const cut = await fetch(base + "/cut");
      await assert.rejects(cut.text()); // the socket was destroyed mid-stream: no clean end
      assert.ok(closed >= 1);
    } finally {
      server.close();
    }
  });
});
