/**
 * Reads a remote body (a peer's, a registry's, a descriptor) up to a bound, stopping at the
 * bound while it streams: a peer sending an endless body costs `maxBytes` of memory at most,
 * never what it chose to send. A declared Content-Length over the bound is refused before
 * reading anything.
 */

export class BodyTooLargeError extends Error {
  override name = "BodyTooLargeError";
}

/**
 * The body of `res` (a response we fetched, or a request we serve) as text (UTF-8), or
 * BodyTooLargeError once it passes `maxBytes`.
 */
export async function readBounded(res: Request | Response, maxBytes: number, what = res.url || "body"): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "");
  // A request we serve is not cancelled (that resets the client's connection before it reads
  // our 413): the listener drops the rest of it after the answer (http/listen.ts).
  const serving = res instanceof Request;
  if (Number.isFinite(declared) && declared > maxBytes) {
    if (!serving) await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(`${what}: body larger than ${maxBytes} bytes (Content-Length ${declared})`);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > maxBytes) {
      if (serving) reader.releaseLock();
      else await reader.cancel().catch(() => {});
      throw new BodyTooLargeError(`${what}: body larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, n).toString("utf8");
}

/** Drops a body we do not read (so the connection can be reused or closed), without reading it. */
export async function discardBody(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}
