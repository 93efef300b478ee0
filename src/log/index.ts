/**
 * Readable logs on stderr: `time=… level=info msg="…" key=value`, or JSON lines when
 * log.format = "json". Under systemd (JOURNAL_STREAM set: stderr is the journal's, which stamps
 * every line itself) text lines carry no time of their own. Secrets never reach here: callers
 * pass ids, not keys.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, f?: Fields): void;
  info(msg: string, f?: Fields): void;
  warn(msg: string, f?: Fields): void;
  error(msg: string, f?: Fields): void;
  /** Logs at most once per `intervalMs` per key, then says how many were suppressed. */
  limited(key: string, level: Level, msg: string, f?: Fields, intervalMs?: number): void;
  child(f: Fields): Logger;
}

export interface LogOptions {
  level: Level;
  format: "text" | "json";
  write?: (line: string) => void;
  /** Stamp text lines with the time; default: unless JOURNAL_STREAM says journald reads stderr. */
  time?: boolean;
}

export function createLogger(opts: LogOptions, base: Fields = {}, limits = new Map<string, { at: number; suppressed: number }>()): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const stamp = opts.time ?? !process.env["JOURNAL_STREAM"];
  const emit = (level: Level, msg: string, f: Fields = {}) => {
    if (ORDER[level] < ORDER[opts.level]) return;
    const all = { ...base, ...f };
    if (opts.format === "json") {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...all }));
      return;
    }
    let line = `${stamp ? `time=${new Date().toISOString()} ` : ""}level=${level} msg=${quote(msg)}`;
    for (const [k, v] of Object.entries(all)) if (v !== undefined) line += ` ${k}=${quote(String(v))}`;
    write(line);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    limited(key, level, msg, f, intervalMs = 10_000) {
      const now = Date.now();
      const st = limits.get(key);
      if (st && now - st.at < intervalMs) {
        st.suppressed++;
        return;
      }
      const suppressed = st?.suppressed ?? 0;
      limits.set(key, { at: now, suppressed: 0 });
      emit(level, msg, suppressed > 0 ? { ...f, suppressed } : f);
    },
    child: (f) => createLogger(opts, { ...base, ...f }, limits),
  };
}

function quote(s: string): string {
  return /^[\w.:\/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** A logger that drops everything (library default, tests). */
export const silentLogger: Logger = createLogger({ level: "error", format: "text", write: () => {} });
