/**
 * What subscribers are handed: a verified message from the wire, or one this bus published
 * in-process (signed only if a subscriber asks for its wire form).
 */
import type { MeshExt } from "./envelope/ext.ts";
import { coreOf, EXT_FIELD, type JsonObject } from "./envelope/v1.ts";
import type { Verified } from "./envelope/verify.ts";
import type { LocalMessage } from "./local.ts";
import { traceOf, type TraceContext } from "./trace.ts";

/** A verified message as handed to subscribers. */
export interface Delivery {
  readonly channel: string;
  readonly eventId: string;
  /** The wire object: the message's own fields plus meshMeta, meshSig and meshExt. */
  readonly message: JsonObject;
  /** The message's own fields and meshMeta, without meshSig and meshExt (nothing to sign). */
  readonly body: JsonObject;
  /** Log entry id on durable channels (the SSE event id). */
  readonly id?: string;
  readonly kid: string;
  readonly ext?: MeshExt;
  /** The mesh the message was relayed from (meshExt.origin). */
  readonly origin?: string;
  /** Its W3C trace context (meshExt.traceparent and tracestate). */
  readonly trace?: TraceContext;
  /** The wire object as one line of JSON (an SSE data line). */
  text(): string;
}

export class VerifiedDelivery implements Delivery {
  #body: JsonObject | undefined;
  #text: string | undefined;
  constructor(
    private readonly v: Verified,
    readonly id?: string,
  ) {}
  get channel(): string {
    return this.v.channel;
  }
  get eventId(): string {
    return this.v.eventId;
  }
  get message(): JsonObject {
    return this.v.message;
  }
  get kid(): string {
    return this.v.kid;
  }
  get ext(): MeshExt | undefined {
    return this.v.ext;
  }
  get body(): JsonObject {
    if (this.#body) return this.#body;
    // Rest keeps an own "__proto__" key as a key (CreateDataProperty), as the MAC covered it.
    const { meshSig: _s, [EXT_FIELD]: _e, ...rest } = this.v.message;
    return (this.#body = rest);
  }
  get origin(): string | undefined {
    return this.v.ext?.origin;
  }
  get trace(): TraceContext | undefined {
    return traceOf(this.v.ext?.traceparent, this.v.ext?.tracestate);
  }
  text(): string {
    // Not the received text: it may hold whitespace (newlines) that would break an SSE line.
    // Once for every subscriber the delivery is handed to (SSE fan-out).
    return (this.#text ??= JSON.stringify(this.v.message));
  }
}

export class LocalDelivery implements Delivery {
  #body: JsonObject | undefined;
  #message: JsonObject | undefined;
  constructor(private readonly m: LocalMessage) {}
  get channel(): string {
    return this.m.framed.channel;
  }
  get eventId(): string {
    return this.m.framed.eventId;
  }
  get kid(): string {
    return this.m.key.id;
  }
  /** Parsed from the sealed text, so it is exactly what a remote subscriber would get. */
  get message(): JsonObject {
    return (this.#message ??= JSON.parse(this.m.wire()) as JsonObject);
  }
  get ext(): MeshExt | undefined {
    return this.m.framed.ext ? this.m.sealed().signedExt : undefined;
  }
  /** The published object (meshMeta added when it had none): shared with the publisher, read it only. */
  get body(): JsonObject {
    if (this.#body) return this.#body;
    const { message, meshMeta } = this.m.framed;
    const plain = message["meshMeta"] === meshMeta && !Object.hasOwn(message, "meshSig") && !Object.hasOwn(message, EXT_FIELD);
    return (this.#body = plain ? message : { ...coreOf(message), meshMeta });
  }
  get origin(): string | undefined {
    return this.m.framed.ext?.origin;
  }
  get trace(): TraceContext | undefined {
    return traceOf(this.m.framed.ext?.traceparent, this.m.framed.ext?.tracestate);
  }
  text(): string {
    // Our sealer's canonical text: one line, nothing a sender could smuggle in.
    return this.m.wire();
  }
}
