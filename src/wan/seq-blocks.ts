/**
 * Frame sequences for all of a site's senders, handed out a block at a time. A frame's
 * Nats-Msg-Id is its sender's id and sequence (not its destination), so two senders of one
 * site (one per WAN peer) must never use the same sequence: JetStream would take the second
 * frame for a repeat of the first and drop it, within its dedupe window. Each block starts past
 * every block handed out before, here or in an earlier run (the highest is kept in a file; a
 * fresh state directory starts at µs since the epoch, above anything an earlier one sent).
 * Blocks are small (see SEQ_BLOCK) so that, with senders taking turns, the gap in one sender's
 * sequence stays well inside a receiver's memory window.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeAtomic } from "./atomic.ts";

export class SeqBlocks {
  #next: number;

  /**
   * `reserved`: what each sender of this state directory reserved before (its `seq` file).
   * A restart goes on right after them, not at the clock: a sender's sequence must not leap
   * far (a receiver takes a frame more than its memory's window below the highest it has seen
   * for a repeat, and a frame retried after a restart may arrive after newer ones). Only a
   * state directory with nothing reserved starts at the clock.
   */
  constructor(private readonly file: string, reserved: readonly number[] = []) {
    const stored = existsSync(file) ? Number(readFileSync(file, "utf8").trim()) || 0 : 0;
    const before = Math.max(stored, ...reserved.map((r) => r + 1));
    this.#next = before > 0 ? before : Date.now() * 1000;
  }

  /** The first sequence of a new block of `size`, at least `atLeast`; on disk before it is used. */
  reserve(size: number, atLeast: number): number {
    const start = Math.max(this.#next, atLeast);
    this.#next = start + size;
    writeAtomic(this.file, String(this.#next));
    return start;
  }
}
