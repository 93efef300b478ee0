/**
 * Where a sender keeps the frames it cut and the stream has not acknowledged: one append-only
 * file, a frame appended (one write) before its first send, so every retry, after a crash too,
 * sends the same bytes under the same id. Creating and removing a file per frame was most of a
 * busy sender's disk time.
 *
 * Records are two lines, the frame's metadata as JSON and then its body (a frame body is JSON
 * text without raw newlines). Acknowledgements may come out of order: a head offset, written in
 * place like the queue's, moves past the acknowledged frames at the front (to the end when none
 * is outstanding; the file is then cut back once TRUNCATE_BYTES are spent). A frame acknowledged but still behind the
 * head at a crash is sent again; JetStream's dedupe window or the receiver's sequence memory
 * drops it.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { appendWhole, TRUNCATE_BYTES } from "../bus/spool.ts";
import type { SealedFrame } from "./frame.ts";

export interface StoredFrame extends SealedFrame {
  /** The event id of the frame's first message: tells, after a crash, whether its messages left the queue. */
  first: string;
  createdMs: number;
}

/** Past this size with a stuck frame at the head, the file is rewritten with the outstanding frames only. */
const COMPACT_BYTES = 64 * 1024 * 1024;

export class FrameLog {
  readonly #file: string;
  readonly #headFile: string;
  #fd: number | undefined;
  #headFd: number | undefined;
  /** Bytes in the file. */
  #size = 0;
  #head = 0;
  /** Outstanding frames by sequence, with where their record starts and ends. */
  readonly #live = new Map<number, { start: number; end: number }>();
  /** Bytes of the outstanding frames: they count against the peer's queue bound with its queue. */
  #liveBytes = 0;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#file = join(dir, "frames.log");
    this.#headFile = join(dir, "frames.head");
  }

  /** The frames left by the last run, in file order; a torn last record (never sent) is cut off. */
  load(): StoredFrame[] {
    if (!existsSync(this.#file)) return [];
    const buf = readFileSync(this.#file);
    const head = existsSync(this.#headFile) ? Number(readFileSync(this.#headFile, "utf8").trim()) || 0 : 0;
    let pos = head <= buf.length ? head : 0;
    const out: StoredFrame[] = [];
    for (;;) {
      const nl1 = buf.indexOf(10, pos);
      const nl2 = nl1 < 0 ? -1 : buf.indexOf(10, nl1 + 1);
      if (nl2 < 0) break;
      let frame: StoredFrame;
      try {
        const meta = JSON.parse(buf.toString("utf8", pos, nl1)) as Omit<StoredFrame, "body">;
        frame = { ...meta, body: buf.toString("utf8", nl1 + 1, nl2) };
        if (!Number.isSafeInteger(frame.seq) || typeof frame.msgId !== "string" || typeof frame.subject !== "string") throw new Error("not a frame");
      } catch {
        break; // a damaged record: it and what follows were never sent whole
      }
      out.push(frame);
      this.#live.set(frame.seq, { start: pos, end: nl2 + 1 });
      this.#liveBytes += nl2 + 1 - pos;
      pos = nl2 + 1;
    }
    this.#head = out.length ? this.#live.get(out[0]!.seq)!.start : pos;
    this.#size = pos;
    if (pos < buf.length) writeFileSync(this.#file, buf.subarray(0, pos), { mode: 0o600 });
    return out;
  }

  /** Appends a frame; on disk when this returns. A failed write leaves the file as it was and throws. */
  append(f: StoredFrame): void {
    const { body, ...meta } = f;
    const text = `${JSON.stringify(meta)}\n${body}\n`;
    const bytes = Buffer.byteLength(text);
    this.#fd ??= openSync(this.#file, "a", 0o600);
    appendWhole(this.#fd, this.#file, text, bytes, this.#size);
    this.#live.set(f.seq, { start: this.#size, end: this.#size + bytes });
    this.#liveBytes += bytes;
    this.#size += bytes;
  }

  /** Bytes of the frames not yet acknowledged. */
  get bytes(): number {
    return this.#liveBytes;
  }

  /** The stream acknowledged frame `seq`. */
  done(seq: number): void {
    const r = this.#live.get(seq);
    if (!r) return;
    this.#live.delete(seq);
    this.#liveBytes -= r.end - r.start;
    if (this.#live.size === 0) {
      // Emptied: the head moves to the end, and the file is cut back once that is worth it.
      if (this.#size >= TRUNCATE_BYTES) {
        this.#size = 0;
        this.#fd ??= openSync(this.#file, "a", 0o600);
        ftruncateSync(this.#fd, 0);
      }
      this.#setHead(this.#size);
      return;
    }
    if (r.start !== this.#head) return; // acknowledged out of order: the head waits for the one before
    let head = this.#size;
    for (const x of this.#live.values()) if (x.start < head) head = x.start;
    if (this.#size > COMPACT_BYTES && head > this.#size / 2) this.#compact();
    else this.#setHead(head);
  }

  /** Rewrites the file with the outstanding frames only (acknowledged ones piled up behind a stuck one). */
  #compact(): void {
    const buf = readFileSync(this.#file);
    const live = [...this.#live.entries()].sort((a, b) => a[1].start - b[1].start);
    const parts: Buffer[] = [];
    let pos = 0;
    for (const [seq, r] of live) {
      parts.push(buf.subarray(r.start, r.end));
      this.#live.set(seq, { start: pos, end: pos + (r.end - r.start) });
      pos += r.end - r.start;
    }
    const tmp = this.#file + ".tmp";
    writeFileSync(tmp, Buffer.concat(parts), { mode: 0o600 });
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#setHead(0); // before the rename: a crash in between resends, never skips
    renameSync(tmp, this.#file);
    this.#size = pos;
  }

  #setHead(head: number): void {
    this.#head = head;
    // In place at a fixed width, as the queue's offset: a crash leaves the old or the new one.
    this.#headFd ??= openSync(this.#headFile, existsSync(this.#headFile) ? "r+" : "w+", 0o600);
    writeSync(this.#headFd, String(head).padStart(20, " "), 0);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    if (this.#headFd !== undefined) closeSync(this.#headFd);
    this.#fd = undefined;
    this.#headFd = undefined;
  }
}
