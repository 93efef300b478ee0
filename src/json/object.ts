/**
 * A JSON object, checked and never rebuilt. Schema libraries' record schemas take an array
 * (`typeof [] === "object"`) and hand back a new object (`[1]` became `{"0":1}` on
 * POST /v1/publish): every inbound "object" goes through this check instead.
 */
import * as v from "valibot";

export function isJsonObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/** A valibot schema that checks for a plain object and passes the same object through. */
export const jsonObject = (message = "expected an object") => v.custom<Record<string, unknown>>(isJsonObject, message);

const plain = () => v.custom<Record<string, unknown>>(isJsonObject, "expected an object");

/**
 * valibot's object schemas take an array (`[]` passes a schema whose keys are all optional):
 * these check for a plain object first. Use them for every input (not inside `v.variant`, which
 * needs the bare object schema and refuses an array by its discriminator anyway).
 */
export function strictObject<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(plain(), v.strictObject(entries));
}

export function looseObject<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(plain(), v.looseObject(entries));
}
