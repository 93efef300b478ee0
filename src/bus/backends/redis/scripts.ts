/**
 * The Lua the Redis backend runs, each one atomic step. APPEND_ONCE must agree with
 * `bus/seq-set.ts` (SeqMemory): test/seq-set.test.ts checks that they decide alike.
 */
import type { RedisClient } from "../../../redis/index.ts";

/**
 * appendOnce in one step: is ARGV[2] in the sequence set (ranges {"r":[[lo,hi],…]}, the window
 * of SeqMemory below its highest)? If not, XADD each entry and record it. Integers stay below
 * 2^53 and are written with %d (cjson would round them to 14 digits).
 */
export const APPEND_ONCE = `
local seq = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local r = {}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, t = pcall(cjson.decode, cur)
  if ok and type(t) == 'table' and type(t.r) == 'table' then
    for _, x in ipairs(t.r) do
      if type(x) == 'table' and type(x[1]) == 'number' and type(x[2]) == 'number' and x[1] <= x[2] then r[#r + 1] = { x[1], x[2] } end
    end
    table.sort(r, function(a, b) return a[1] < b[1] end)
  end
end
local n = #r
if n > 0 then
  if seq <= r[n][2] - window then return 0 end
  for i = n, 1, -1 do
    if seq > r[i][2] then break end
    if seq >= r[i][1] then return 0 end
  end
end
for i = 5, #ARGV, 2 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[i + 1])
end
local at = n + 1
for i = 1, n do if r[i][1] > seq then at = i break end end
local prev = r[at - 1]
local nxt = r[at]
if prev and prev[2] + 1 == seq then
  prev[2] = seq
  if nxt and nxt[1] == seq + 1 then prev[2] = nxt[2] table.remove(r, at) end
elseif nxt and nxt[1] == seq + 1 then nxt[1] = seq
else table.insert(r, at, { seq, seq }) end
local floor = r[#r][2] - window
local parts = {}
for _, x in ipairs(r) do if x[2] > floor then parts[#parts + 1] = string.format('[%d,%d]', x[1], x[2]) end end
redis.call('HSET', KEYS[1], ARGV[1], '{"r":[' .. table.concat(parts, ',') .. ']}')
return 1
`;

/** XADD of each ARGV[2..] to KEYS[1] (ARGV[1]: MAXLEN ~), in order; the entry ids. */
export const APPEND_MANY = `
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i]) end
return ids
`;

/**
 * XADD of each ARGV[4..] to KEYS[2] (ARGV[3]: MAXLEN ~), then HSET KEYS[1] ARGV[1] ARGV[2]: the
 * entries and their mark in one step, on a Cluster where both keys share a hash slot.
 */
export const APPEND_MARKED = `
for i = 4, #ARGV do redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[i]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/**
 * One stream's part of a frame on a Cluster: unless ARGV[1] (the frame's sequence) is in the
 * sorted set KEYS[1] (sequences this stream took and the sender's memory does not hold yet),
 * XADD each ARGV[4..] to KEYS[2] (ARGV[3]: MAXLEN ~) and add the sequence; 1 when appended.
 * Sequences more than ARGV[2] below it are dropped (left by a crash before the cleanup).
 */
export const STREAM_ONCE = `
local seq = tonumber(ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
for i = 4, #ARGV do redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[i]) end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', seq - tonumber(ARGV[2])))
return 1
`;

/** PUBLISH of each (channel, message) pair of ARGV, in order. */
export const PUBLISH_MANY = `
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return 1
`;

/** The commands defineCommand adds (ioredis types them only by declaration merging). */
export interface Scripts {
  piloxAppendOnce(numKeys: number, ...a: (string | number)[]): Promise<unknown>;
  piloxAppendMany(numKeys: number, ...a: string[]): Promise<string[]>;
  piloxPublishMany(...a: string[]): Promise<unknown>;
  piloxAppendMarked(numKeys: number, ...a: string[]): Promise<unknown>;
  piloxStreamOnce(numKeys: number, ...a: string[]): Promise<unknown>;
}

/** Defines the scripts on `r` (sent by SHA once loaded, reloaded after a Redis restart). */
export function withScripts(r: RedisClient): Scripts {
  r.defineCommand("piloxAppendOnce", { lua: APPEND_ONCE });
  r.defineCommand("piloxAppendMany", { lua: APPEND_MANY });
  r.defineCommand("piloxPublishMany", { numberOfKeys: 0, lua: PUBLISH_MANY });
  r.defineCommand("piloxAppendMarked", { lua: APPEND_MARKED });
  r.defineCommand("piloxStreamOnce", { lua: STREAM_ONCE });
  return r as unknown as Scripts;
}

/**
 * A key in the same hash slot as `key`, named after `base`: Redis Cluster hashes only the part
 * of a key between its first "{" and the next "}" when there is one, else the whole key.
 */
export function besideKey(base: string, key: string): string {
  const open = key.indexOf("{");
  const close = open >= 0 ? key.indexOf("}", open + 1) : -1;
  const tag = close > open + 1 ? key.slice(open + 1, close) : key;
  return `${base}:{${tag}}`;
}
