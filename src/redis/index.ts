/** The Redis connection layer's public face. */
export { isConnectionError, redisClient, shut, type RedisClient, type RedisTarget } from "./client.ts";
