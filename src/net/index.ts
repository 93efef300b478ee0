export { guardedGet, GuardedFetchError, isPrivateAddress, type GuardedFetchOptions } from "./guarded-fetch.ts";
