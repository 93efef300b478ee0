export { guardedGet, GuardedFetchError, isPrivateAddress, PrivateAddressError, type GuardedFetchOptions } from "./guarded-fetch.ts";
export { RateLimiter } from "./rate-limit.ts";
export { BodyTooLargeError, discardBody, readBounded } from "./body.ts";
