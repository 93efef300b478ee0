/** The one mapping from a Redis failure to the bus's terms. */
import { isConnectionError } from "../../../redis/index.ts";
import { BackendUnavailableError } from "../backend.ts";

/**
 * `err` as the bus sees it: a BackendUnavailableError when Redis is away (callers spool, wait or
 * answer 503), else the error itself (a wrong command is a bug, not an outage).
 */
export function unavailable(err: unknown): unknown {
  if (err instanceof BackendUnavailableError || !isConnectionError(err)) return err;
  return new BackendUnavailableError(`redis unavailable: ${err instanceof Error ? err.message : String(err)}`);
}
