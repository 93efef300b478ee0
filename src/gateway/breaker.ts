/**
 * A circuit breaker per upstream: closed until `failures` consecutive failures, then open
 * (refusing at once) for `cooldownMs`, then half-open: one trial request; its success closes
 * the breaker, its failure opens it again.
 */
export type BreakerState = "closed" | "open" | "half_open";

export class CircuitBreaker {
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #trial = false;

  constructor(
    private readonly failures: () => number,
    private readonly cooldownMs: () => number,
    private readonly onChange: (s: BreakerState) => void = () => {},
  ) {}

  get state(): BreakerState {
    if (this.#state === "open" && Date.now() - this.#openedAt >= this.cooldownMs()) this.#set("half_open");
    return this.#state;
  }

  /** May a request go upstream now? (In half-open, only one at a time.) */
  allow(): boolean {
    const s = this.state;
    if (s === "closed") return true;
    if (s === "half_open" && !this.#trial) {
      this.#trial = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.#failures = 0;
    this.#trial = false;
    if (this.#state !== "closed") this.#set("closed");
  }

  failure(): void {
    this.#trial = false;
    this.#failures++;
    if (this.#state === "half_open" || this.#failures >= this.failures()) {
      this.#openedAt = Date.now();
      this.#set("open");
    }
  }

  #set(s: BreakerState): void {
    this.#state = s;
    this.onChange(s);
  }
}
