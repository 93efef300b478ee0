/**
 * Where an SSE stream's bytes go. Under @hono/node-server, straight into Node's response: a
 * stream then costs its socket and a few closures. Hono's streamSSE puts two web streams and a
 * reader between them (about 30 KB a subscriber, measured with 10,000 of them, where the GC of
 * that heap made each delivery five times dearer); it stays for runtimes without a Node
 * response (Deno).
 */
import type { ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";

export interface SseSink {
  /** Resolves once the bytes are handed to the kernel (or the stream ended). */
  write(chunk: Uint8Array | string): Promise<void>;
  /** Ends the stream now: the socket goes, and with it whatever waited to be written. */
  abort(): void;
  /** The client went away or the stream was cut. */
  readonly closed: boolean;
  onClose(cb: () => void): void;
}

const HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" };

/** Answers with an SSE stream that `run` writes to; the stream ends when `run` returns. */
export function sseResponse(c: Context, run: (sink: SseSink) => Promise<void>): Response | Promise<Response> {
  const res = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (!res || typeof res.writeHead !== "function") return webSse(c, run);
  let closed = false;
  const onClose: (() => void)[] = [];
  res.once("close", () => {
    closed = true;
    for (const f of onClose) f();
  });
  res.writeHead(200, HEADERS);
  res.flushHeaders();
  const sink: SseSink = {
    write: (chunk) =>
      closed || res.destroyed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            // An error (the socket went) ends the stream through "close"; the write is settled.
            res.write(chunk, () => resolve());
          }),
    abort: () => res.destroy(),
    get closed() {
      return closed || res.destroyed;
    },
    onClose: (cb) => void (closed ? cb() : onClose.push(cb)),
  };
  void run(sink)
    .catch(() => {})
    .finally(() => {
      if (!res.writableEnded && !res.destroyed) res.end();
    });
  return RESPONSE_ALREADY_SENT;
}

function webSse(c: Context, run: (sink: SseSink) => Promise<void>): Response {
  return streamSSE(c, async (stream) => {
    await run({
      write: async (chunk) => void (await stream.write(chunk)),
      abort: () => {
        (c.env as { outgoing?: { destroy(): void } } | undefined)?.outgoing?.destroy();
        stream.abort();
      },
      get closed() {
        return stream.aborted || stream.closed;
      },
      onClose: (cb) => stream.onAbort(cb),
    });
  });
}
