/** Every reason an inbound federation request is refused for: the token's, then the relay's. */
import { RELAY_REFUSAL_REASONS } from "./inbound.ts";
import { TOKEN_REJECT_REASONS } from "./token.ts";

export const FEDERATION_REFUSAL_REASONS: readonly string[] = [...TOKEN_REJECT_REASONS, ...RELAY_REFUSAL_REASONS];
