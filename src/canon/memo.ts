/**
 * Texts the hot path builds again and again from a few short strings (`"key":`, a quoted
 * channel name): kept after the first time, for a bounded number of short inputs, so a
 * stream of distinct values costs no more than having no cache.
 */
export function memoText(make: (s: string) => string, maxEntries = 4096, maxInputLength = 200): (s: string) => string {
  const texts = new Map<string, string>();
  return (s) => {
    let t = texts.get(s);
    if (t === undefined) {
      t = make(s);
      if (s.length <= maxInputLength && texts.size < maxEntries) texts.set(s, t);
    }
    return t;
  };
}

/** JSON.stringify of a string, kept (the channel names and key ids of the bus). */
export const quoted = memoText((s) => JSON.stringify(s));
