/**
 * Frame sequences for all of a site's senders, handed out a block at a time. A frame's
 * Nats-Msg-Id is its sender's id and sequence (not its destination), so two senders of one
 * site (one per WAN peer) must never use the same sequence: JetStream would take the second
 * frame for a repeat of the first and drop it, within its dedupe window. Each block starts past
 * every block handed out before, here or in an earlier run (the highest is kept in a file, and a
 * fresh one starts at µs since the epoch, above anything an earlier state directory sent).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

export class SeqBlocks {
  #next: number;

  constructor(private readonly file: string) {
    const stored = existsSync(file) ? Number(readFileSync(file, "utf8").trim()) || 0 : 0;
    this.#next = Math.max(stored, Date.now() * 1000);
  }

  /** The first sequence of a new block of `size`, at least `atLeast`; on disk before it is used. */
  reserve(size: number, atLeast: number): number {
    const start = Math.max(this.#next, atLeast);
    this.#next = start + size;
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, String(this.#next), { mode: 0o600 });
    renameSync(tmp, this.file);
    return start;
  }
}
