/** The Redis connection layer's public face. */
export { isConnectionError, masterOf, redisClient, shut, type RedisClient, type RedisTarget } from "./client.ts";
export { keySlot } from "./slot.ts";
