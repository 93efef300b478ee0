/** The Redis bus backend's public face. */
export { RedisBackend, type RedisBackendOptions } from "./backend.ts";
