export { guardedGet, GuardedFetchError, isPrivateAddress, type GuardedFetchOptions } from "./guarded-fetch.ts";
export { RateLimiter } from "./rate-limit.ts";
export { BodyTooLargeError, discardBody, readBounded } from "./body.ts";
