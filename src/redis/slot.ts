/**
 * Redis Cluster's hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag (the part
 * between the first "{" and the next "}", when not empty), modulo 16384.
 */
export function keySlot(key: string): number {
  let k = key;
  const open = k.indexOf("{");
  if (open >= 0) {
    const close = k.indexOf("}", open + 1);
    if (close > open + 1) k = k.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(k)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
