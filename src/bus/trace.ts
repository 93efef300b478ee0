/**
 * W3C Trace Context (traceparent version 00, tracestate) as a bus message carries it, in
 * meshExt (covered by its MAC). Invalid values are dropped, never forwarded.
 */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
/** Printable ASCII, bounded (W3C allows 32 list members of at most 256 characters each; we keep 512). */
const TRACESTATE = /^[\x20-\x7e]{1,512}$/;

export function isTraceparent(s: unknown): s is string {
  return typeof s === "string" && TRACEPARENT.test(s);
}

export function isTracestate(s: unknown): s is string {
  return typeof s === "string" && TRACESTATE.test(s);
}

/** The trace context of a request or entry, or undefined when its traceparent is missing or invalid. */
export function traceOf(traceparent: unknown, tracestate: unknown): TraceContext | undefined {
  if (!isTraceparent(traceparent)) return undefined;
  return isTracestate(tracestate) ? { traceparent, tracestate } : { traceparent };
}
