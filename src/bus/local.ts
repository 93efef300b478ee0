/**
 * Where an in-process message waits to be sealed. On the embedded bus a best-effort message is
 * framed at publish (validated, canonical, its size checked: every refusal a sealed one would
 * get) and signed only when something needs its wire form: a bus with other keys sharing the
 * backend, an SSE stream, a peer. Subscribers of the bus that framed it get it unverified, as
 * the process that made it needs no proof of its own work.
 */
import type { InProcessMessage } from "./backends/backend.ts";
import { sign, wireOf, type Framed, type Prepared } from "./envelope/seal.ts";
import type { BusKey } from "./keyring.ts";

export class LocalMessage implements InProcessMessage {
  #sealed: Prepared | undefined;
  #wire: string | undefined;

  /** The seal time in ms (the extension's ts; the framing time for the plain v1 form). */
  readonly sentAt: number;

  /** `from`: the bus that framed it; only its own subscribers may skip verification. */
  constructor(
    readonly from: object,
    readonly framed: Framed,
    readonly key: BusKey,
  ) {
    this.sentAt = framed.ext?.ts ?? Date.now();
  }

  get eventId(): string {
    return this.framed.eventId;
  }

  sealed(): Prepared {
    return (this.#sealed ??= sign(this.framed, this.key));
  }

  wire(): string {
    return (this.#wire ??= wireOf(this.sealed()));
  }
}
