/**
 * Schemas that check and never rebuild. Schema libraries' record schemas take an array
 * (`typeof [] === "object"`) and hand back a new object (`[1]` became `{"0":1}` on
 * POST /v1/publish), and valibot's object schemas take an array too (`[]` passes one whose keys
 * are all optional): every inbound "object" goes through these instead.
 */
import * as v from "valibot";
import { isJsonObject } from "../json/index.ts";

/** A plain object, passed through as it is. */
export const jsonObject = (message = "expected an object") => v.custom<Record<string, unknown>>(isJsonObject, message);

const plain = () => v.custom<Record<string, unknown>>(isJsonObject, "expected an object");

/** valibot's strictObject, after a plain-object check (not inside `v.variant`, which needs the bare schema). */
export function strictObject<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(plain(), v.strictObject(entries));
}

/** valibot's looseObject, after a plain-object check. */
export function looseObject<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(plain(), v.looseObject(entries));
}
