export { guardedGet, GuardedFetchError, isPrivateAddress, type GuardedFetchOptions } from "./guarded-fetch.ts";
export { RateLimiter } from "./rate-limit.ts";
